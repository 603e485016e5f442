"""NVIDIA GPU energy from NVML's total-energy counter (nvidia-ml-py, imported lazily).

`nvmlDeviceGetTotalEnergyConsumption` is a millijoule counter (Volta and
newer) that the driver updates about every 100 ms: read at window start and
end, after synchronising the GPU. It covers the GPU board only, not the CPU
or the rest of the host.
"""
from __future__ import annotations

from typing import Any, Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int_at_least
from edgebranchy.measure.power.base import EnergyReading, PowerMeter


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise EdgeBranchyError(
            "the NVML Python binding is not installed (pip install nvidia-ml-py, or edgebranchy[nvml])"
        ) from None
    return pynvml


class NvmlMeter(PowerMeter):
    """Energy of one NVIDIA GPU from the NVML counter, read at the window edges."""

    name = "nvml"
    kind = "measured"

    def __init__(self, device_index: int = 0, sync: Callable[[], None] | None = None) -> None:
        if not is_int_at_least(device_index, 0):
            raise EdgeBranchyError(f"NVML device index must be an integer >= 0, got {device_index!r}")
        self.device_index = device_index
        self.sync = sync
        self._nvml: Any = None
        self._handle: Any = None
        self._device_name: str | None = None
        self._e0_mj: int | None = None

    @classmethod
    def available(cls, device_index: int = 0, sync: Callable[[], None] | None = None) -> tuple[bool, str]:
        """Whether the NVML energy counter of GPU `device_index` can be read here."""
        try:
            meter = cls(device_index=device_index, sync=sync)
            try:
                meter._open()
                meter._read_mj()
                name = meter._device_name
            finally:
                meter.close()
        except EdgeBranchyError as e:
            return False, str(e)
        return True, f"GPU {device_index} ({name}) energy counter readable"

    def describe(self) -> dict:
        return {
            "source": self.name,
            "kind": self.kind,
            "device_index": self.device_index,
            "gpu": self._device_name,
            "scope": "GPU board only",
        }

    def _open(self) -> None:
        if self._handle is not None:
            return
        nvml = _import_pynvml()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise EdgeBranchyError(f"NVML cannot start (no NVIDIA driver?): {e}") from None
        self._nvml = nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            if self.device_index >= count:
                raise EdgeBranchyError(f"NVML sees {count} GPU(s); there is no GPU {self.device_index}")
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.device_index)
            name = nvml.nvmlDeviceGetName(self._handle)
            self._device_name = name.decode() if isinstance(name, bytes) else str(name)
        except nvml.NVMLError as e:
            self.close()
            raise EdgeBranchyError(f"NVML cannot open GPU {self.device_index}: {e}") from None
        except EdgeBranchyError:
            self.close()
            raise

    def _read_mj(self) -> int:
        nvml = self._nvml
        try:
            return int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except nvml.NVMLError as e:
            not_supported = getattr(nvml, "NVMLError_NotSupported", None)
            if not_supported is not None and isinstance(e, not_supported):
                raise EdgeBranchyError(
                    f"GPU {self.device_index} ({self._device_name}) has no total-energy counter "
                    "(needs Volta or newer)"
                ) from None
            raise EdgeBranchyError(f"NVML energy counter read failed on GPU {self.device_index}: {e}") from None

    def start(self) -> None:
        self._open()
        if self.sync is not None:
            self.sync()
        self._e0_mj = self._read_mj()
        self._open_window()

    def stop(self) -> EnergyReading:
        if self.sync is not None and self._t_start is not None:
            self.sync()
        t0, t1 = self._close_window()
        e1 = self._read_mj()
        e0, self._e0_mj = self._e0_mj, None
        if e0 is None:
            raise EdgeBranchyError("nvml: stop() without a start reading")
        if e1 < e0:
            raise EdgeBranchyError(f"NVML energy counter went backwards ({e0} -> {e1} mJ); driver reset?")
        return EnergyReading.from_window((e1 - e0) / 1000.0, t1 - t0, 2, self.name, self.kind)

    def close(self) -> None:
        """Shut NVML down (it counts init calls, so each meter balances its own)."""
        nvml, self._nvml, self._handle = self._nvml, None, None
        self._t_start = None
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass

