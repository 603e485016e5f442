"""The contracts between the parts: artifact manifest, results schema, calibration record (no torch)."""
