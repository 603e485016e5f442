"""TensorRT on the device: `compat` (version differences), `device` (import, GPU facts, dtypes,
logger), `settings` (the validated [tensorrt] table), `build` (engines from an artifact) and `load`
(deserialising them). tensorrt and pycuda are imported inside the functions that need them."""
