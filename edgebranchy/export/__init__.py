"""Artifacts: per-segment ONNX graphs (export needs torch) and TensorRT engines (built on the device)."""
