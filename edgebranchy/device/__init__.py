"""The device: its profile (schema, lookup, auto-detection) and `doctor` (what works here, and whether an
artifact answers here as it does on ONNX Runtime).

Submodules are imported on demand; nothing here pulls in an optional library.
"""
