"""NVIDIA GPU energy from NVML's total-energy counter (nvidia-ml-py, imported lazily).

`nvmlDeviceGetTotalEnergyConsumption` is a millijoule counter (Volta and
newer) that the driver updates about every 100 ms: read at window start and
end, after synchronising the GPU. It covers the GPU board only, not the CPU
or the rest of the host.

Which GPU: NVML numbers devices in PCI order and ignores CUDA_VISIBLE_DEVICES,
while CUDA numbers them fastest first (and after that mask), so "device 0" can
be two different GPUs. Given the PCI bus id of the GPU the backend runs on
(`pci_bus_id`, from CUDA), the meter opens the NVML device with that bus id;
without one it opens NVML device `device_index` and says so.
"""
from __future__ import annotations

from typing import Any, Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int_at_least
from edgebranchy.measure.power.meter import EnergyReading, PowerMeter, Provenance

#: the driver updates the energy counter about every 100 ms (energy.md)
COUNTER_UPDATE_S = 0.1


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

    def __init__(self, device_index: int = 0, sync: Callable[[], None] | None = None,
                 pci_bus_id: str | None = None) -> None:
        if not is_int_at_least(device_index, 0):
            raise EdgeBranchyError(f"NVML device index must be an integer >= 0, got {device_index!r}")
        if pci_bus_id is not None and pci_address(pci_bus_id) is None:
            raise EdgeBranchyError(f"not a PCI bus id (domain:bus:device.function): {pci_bus_id!r}")
        self.device_index = device_index
        self.pci_bus_id = pci_bus_id
        self.sync = sync
        self._nvml: Any = None
        self._handle: Any = None
        self._device_name: str | None = None
        self._e0_mj: int | None = None

    @classmethod
    def available(cls, device_index: int = 0, sync: Callable[[], None] | None = None,
                  pci_bus_id: str | None = None) -> tuple[bool, str]:
        """Whether the NVML energy counter of the GPU (by PCI bus id, else NVML index) can be read here."""
        try:
            meter = cls(device_index=device_index, sync=sync, pci_bus_id=pci_bus_id)
            try:
                meter._open()
                mj = meter._read_mj()
                name = meter._device_name
                if mj == 0 and not meter._power_mw():
                    # a counter stuck at 0 with no power reading would give 0 J for every window
                    return False, (f"{meter._which()} ({name}) returns no power: the energy counter reads 0 mJ "
                                   "and nvmlDeviceGetPowerUsage gives nothing (as on Jetson's integrated GPU); "
                                   "use tegrastats or ina3221 on a Jetson")
            finally:
                meter.close()
        except EdgeBranchyError as e:
            return False, str(e)
        return True, f"{meter._which()} ({name}) energy counter readable ({mj} mJ so far)"

    def _which(self) -> str:
        if self.pci_bus_id is not None:
            return f"GPU at PCI {self.pci_bus_id} (NVML device {self.device_index})"
        return f"GPU {self.device_index}"

    def provenance(self) -> Provenance:
        how = ("the backend's GPU, matched by PCI bus id" if self.pci_bus_id is not None else
               "NVML's order, not matched to a CUDA device (none named)")
        return Provenance("gpu-board", f"{self._which()} ({self._device_name or '?'}; {how}) board only: not the "
                          "CPU or the rest of the host", "energy-counter", COUNTER_UPDATE_S, None)

    def describe(self) -> dict:
        if self._handle is None:  # the GPU (index, name) is known once NVML is open
            try:
                self._open()
            except EdgeBranchyError:
                pass
        return {
            "source": self.name,
            "kind": self.kind,
            "provenance": self.provenance().to_dict(),
            "device_index": self.device_index,
            "pci_bus_id": self.pci_bus_id,
            "matched_by": "pci-bus-id" if self.pci_bus_id is not None else "nvml-index",
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
            if self.pci_bus_id is not None:
                self.device_index = self._index_of(nvml, count)
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

    def _index_of(self, nvml: Any, count: int) -> int:
        """The NVML index of the device at `pci_bus_id` (bus ids compared as numbers: CUDA writes
        "0000:65:00.0", NVML "00000000:65:00.0")."""
        want = pci_address(self.pci_bus_id)
        seen = []
        for i in range(count):
            info = nvml.nvmlDeviceGetPciInfo(nvml.nvmlDeviceGetHandleByIndex(i))
            bus = info.busId.decode() if isinstance(info.busId, bytes) else str(info.busId)
            if pci_address(bus) == want:
                return i
            seen.append(bus)
        raise EdgeBranchyError(f"NVML has no GPU at PCI bus id {self.pci_bus_id} (the one the backend runs on); "
                               f"it sees {', '.join(seen) or 'none'}")

    def _read_mj(self) -> int:
        nvml = self._nvml
        try:
            return int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except nvml.NVMLError as e:
            not_supported = getattr(nvml, "NVMLError_NotSupported", None)
            if not_supported is not None and isinstance(e, not_supported):
                raise EdgeBranchyError(
                    f"GPU {self.device_index} ({self._device_name}) returns no energy: "
                    "nvmlDeviceGetTotalEnergyConsumption is not supported (needs a Volta or newer discrete GPU; "
                    "Jetson's integrated GPU reports no power through NVML: use tegrastats or ina3221)"
                ) from None
            raise EdgeBranchyError(f"NVML energy counter read failed on GPU {self.device_index}: {e}") from None

    def _power_mw(self) -> int | None:
        """nvmlDeviceGetPowerUsage (mW), or None where it is not supported."""
        nvml = self._nvml
        fn = getattr(nvml, "nvmlDeviceGetPowerUsage", None)
        if fn is None:
            return None
        try:
            return int(fn(self._handle))
        except nvml.NVMLError:
            return None

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
        return self._reading((e1 - e0) / 1000.0, t1 - t0, 2)

    def close(self) -> None:
        """Shut NVML down (it counts init calls, so each meter balances its own)."""
        nvml, self._nvml, self._handle = self._nvml, None, None
        self._t_start = None
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass


def pci_address(text: str) -> tuple | None:
    """(domain, bus, device, function) of a PCI bus id such as "0000:65:00.0" or "00000000:65:00.0"."""
    import re

    m = re.fullmatch(r"\s*(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])\s*", str(text))
    return None if m is None else (int(m.group(1) or "0", 16), int(m.group(2), 16), int(m.group(3), 16),
                                   int(m.group(4)))
