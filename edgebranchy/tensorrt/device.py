"""TensorRT and the CUDA device it runs on: importing the bindings, the facts that identify the
GPU for engines, TensorRT -> numpy dtypes, and a logger that keeps errors.

tensorrt and pycuda are imported inside the functions. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from edgebranchy.errors import EdgeBranchyError

#: returns (GPU name, (major, minor)) or (GPU name, (major, minor), SM count)
GpuInfo = Callable[[], tuple]
#: the board model (Jetson): AGX Orin, Orin NX and Orin Nano share GPU name and compute capability 8.7
DEVICE_TREE_MODEL = "/proc/device-tree/model"

#: attributes this module uses on TensorRT objects
TRT_OBJECT_API = frozenset()


#: files whose presence says "this is a Jetson" / "an NVIDIA driver is loaded"
JETSON_RELEASE = "/etc/nv_tegra_release"
NVIDIA_DRIVER = ("/proc/driver/nvidia/version", "/dev/nvidia0")


def machine_kind(root: str = "") -> str:
    """"jetson", "nvidia-gpu" (a machine with an NVIDIA driver loaded) or "no-nvidia-gpu"; `root` prefixes
    the paths looked at (tests)."""
    import os

    model = board_model(root + DEVICE_TREE_MODEL) or ""
    if os.path.exists(root + JETSON_RELEASE) or "jetson" in model.lower():
        return "jetson"
    if any(os.path.exists(root + p) for p in NVIDIA_DRIVER):
        return "nvidia-gpu"
    return "no-nvidia-gpu"


def missing_tensorrt_advice(kind: str) -> str:
    """How to get TensorRT on this kind of machine (see machine_kind)."""
    if kind == "jetson":
        return ("on Jetson they come with JetPack (python3-libnvinfer): create the venv with "
                "--system-site-packages")
    if kind == "nvidia-gpu":
        return ("install them with `pip install tensorrt` (the version that matches this machine's CUDA, e.g. "
                "tensorrt-cu12 for CUDA 12) and pycuda")
    return "TensorRT needs an NVIDIA GPU and none was found on this machine; use --backend onnxruntime"


def import_tensorrt() -> Any:
    """The tensorrt module, or an EdgeBranchyError saying how to get it on this machine."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise EdgeBranchyError(f"the TensorRT Python bindings cannot be imported ({e}); "
                               + missing_tensorrt_advice(machine_kind())) from None
    return trt


def gpu_info(device: int = 0) -> Tuple[str, Tuple[int, int], int]:
    """(GPU name, compute capability, SM count) of CUDA device `device`, through pycuda."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise EdgeBranchyError(f"pycuda is needed to identify the GPU for TensorRT ({e}); "
                               "install it with `pip install pycuda` (needs nvcc and cuda.h)") from None
    cuda.init()
    if device >= cuda.Device.count():
        raise EdgeBranchyError(f"no CUDA device {device} (found {cuda.Device.count()})")
    return describe_device(cuda, cuda.Device(device))


def describe_device(cuda: Any, dev: Any) -> Tuple[str, Tuple[int, int], int]:
    """(name, compute capability, SM count) of a pycuda Device."""
    major, minor = dev.compute_capability()
    sms = int(dev.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT))
    return str(dev.name()), (int(major), int(minor)), sms


def board_model(path: str = "") -> Optional[str]:
    """The device-tree model string (Jetson, Raspberry Pi), or None where there is none."""
    try:
        with open(path or DEVICE_TREE_MODEL, "rb") as f:
            text = f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None
    return text or None


def device_facts(trt: Any, gpu: Optional[GpuInfo] = None) -> dict:
    """What identifies this device for engines: TensorRT version, GPU name, compute capability, SM count and
    board model (the last two separate Orin modules that share name and compute capability)."""
    info = tuple((gpu or gpu_info)())
    name, cc = info[0], info[1]
    return {"tensorrt": str(trt.__version__), "gpu": name, "compute_capability": f"{cc[0]}.{cc[1]}",
            "sm_count": int(info[2]) if len(info) > 2 else None, "board": board_model()}


def make_logger(trt: Any, sink: Callable[[str], None]) -> Any:
    """A trt.ILogger that forwards warnings/errors to `sink` and keeps the errors."""
    errors_ = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
    warning = trt.ILogger.Severity.WARNING

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            if severity in errors_:
                self.errors.append(str(msg))
                sink(f"TensorRT error: {msg}")
            elif severity == warning:
                sink(f"TensorRT warning: {msg}")

    return _Logger()


def numpy_dtypes(trt: Any) -> dict:
    """TensorRT data types -> numpy dtypes, for the types every supported version has."""
    import numpy as np

    return {trt.DataType.FLOAT: np.dtype(np.float32), trt.DataType.HALF: np.dtype(np.float16),
            trt.DataType.INT32: np.dtype(np.int32), trt.DataType.INT8: np.dtype(np.int8),
            trt.DataType.BOOL: np.dtype(np.bool_)}
