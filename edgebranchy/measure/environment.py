"""Facts about the machine a measurement ran on: CPU, clocks, power mode, GPU, versions.

Nothing here imports a heavy library: versions come from package metadata,
tools (nvpmodel, nvidia-smi) are run only when they are on PATH.
"""
from __future__ import annotations

import platform
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Callable

#: library -> distributions that provide it, first found wins
LIBRARIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_libs"),
    "pycuda": ("pycuda",),
    "cuda-python": ("cuda-python", "cuda-bindings"),
    "psutil": ("psutil",),
    "nvidia-ml-py": ("nvidia-ml-py",),
    "edgebranchy": ("edgebranchy",),
}

GOVERNOR = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The CPU's model name (/proc/cpuinfo "model name", or the ARM fallbacks), else platform.processor()."""
    try:
        fields: dict[str, str] = {}
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() not in fields:
                fields[key.strip()] = value.strip()
        for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
            if fields.get(key):
                return fields[key]
    except OSError:
        pass
    return platform.processor() or None


def _run(cmd: list[str], timeout: float = 10.0) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    return out.stdout


def jetson_power_mode(which: Callable[[str], str | None] = shutil.which) -> dict | None:
    """`nvpmodel -q` as {"name", "id"}; None without nvpmodel; {"error"} when it fails."""
    exe = which("nvpmodel")
    if exe is None:
        return None
    try:
        text = _run([exe, "-q"])
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"nvpmodel -q failed: {e}"}
    name, mode_id = None, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
        elif line.isdigit() and mode_id is None:
            mode_id = int(line)
    if name is None:
        return {"error": f"unexpected nvpmodel -q output: {text.strip()[:200]!r}"}
    return {"name": name, "id": mode_id}


def nvidia_gpus(which: Callable[[str], str | None] = shutil.which) -> list[dict] | dict | None:
    """GPUs from `nvidia-smi` as [{"name", "driver", "memory_mib"}]; None without nvidia-smi; {"error"} on failure."""
    exe = which("nvidia-smi")
    if exe is None:
        return None
    try:
        text = _run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"])
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"nvidia-smi failed: {e}"}
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            mem = int(parts[2]) if parts[2].isdigit() else None
            gpus.append({"name": parts[0], "driver": parts[1], "memory_mib": mem})
    return gpus


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that matter to a run (None: not installed)."""
    out: dict[str, str | None] = {}
    for lib, dists in LIBRARIES.items():
        out[lib] = None
        for dist in dists:
            try:
                v = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            out[lib] = v if dist == lib else f"{v} ({dist})"
            break
    return out


def _read(path: str) -> str | None:
    """The first line of a small text file, or None when it is absent or unreadable."""
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return None
    return lines[0].strip() if lines else None


def collect_environment(which: Callable[[str], str | None] = shutil.which) -> dict:
    """Host, CPU, clocks, Jetson power mode, GPU and library versions, as a JSON-ready dict."""
    import psutil

    try:
        freq = psutil.cpu_freq()
    except (OSError, RuntimeError, NotImplementedError):
        freq = None
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_cores": {"logical": psutil.cpu_count(logical=True), "physical": psutil.cpu_count(logical=False)},
        "governor": _read(GOVERNOR),
        "cpu_freq_mhz": (
            {"current": round(freq.current, 1), "max": round(freq.max, 1) if freq.max else None} if freq else None
        ),
        "power_mode": jetson_power_mode(which),
        "l4t": _read("/etc/nv_tegra_release"),
        "gpu": nvidia_gpus(which),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "versions": library_versions(),
    }
