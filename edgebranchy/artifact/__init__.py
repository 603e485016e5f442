"""The contracts between the parts: artifact manifest, engine records, results schema, calibration record
(no torch)."""
