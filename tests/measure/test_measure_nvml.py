import sys
import types

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.nvml import NvmlMeter


def fake_pynvml(events, *, count=1, init_error=False, not_supported=False, counter=None):
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_DriverNotLoaded(NVMLError):
        pass

    m.NVMLError, m.NVMLError_NotSupported = NVMLError, NVMLError_NotSupported
    counter = counter if counter is not None else {"mj": 1_000_000}

    def nvmlInit():
        events.append("init")
        if init_error:
            raise NVMLError_DriverNotLoaded("Driver Not Loaded")

    def nvmlShutdown():
        events.append("shutdown")

    def nvmlDeviceGetHandleByIndex(i):
        if i >= count:
            raise NVMLError("Invalid Argument")
        return ("handle", i)

    def nvmlDeviceGetTotalEnergyConsumption(handle):
        assert handle[0] == "handle"
        events.append("read")
        if not_supported:
            raise NVMLError_NotSupported("Not Supported")
        return counter["mj"]

    m.nvmlInit, m.nvmlShutdown = nvmlInit, nvmlShutdown
    m.nvmlDeviceGetCount = lambda: count
    m.nvmlDeviceGetHandleByIndex = nvmlDeviceGetHandleByIndex
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    m.nvmlDeviceGetTotalEnergyConsumption = nvmlDeviceGetTotalEnergyConsumption
    return m, counter


def test_counter_difference_with_sync_before_end(monkeypatch):
    events = []
    mod, counter = fake_pynvml(events)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = NvmlMeter(device_index=0, sync=lambda: events.append("sync"))
    meter.start()
    counter["mj"] += 12_345
    r = meter.stop()
    meter.close()
    assert (r.source, r.kind, r.samples) == ("nvml", "measured", 2)
    assert r.joules == pytest.approx(12.345)
    assert events[-3:] == ["sync", "read", "shutdown"]
    assert events.count("init") == events.count("shutdown") == 1
    assert meter.describe()["gpu"] == "NVIDIA H100 80GB HBM3"


def test_module_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    ok, why = NvmlMeter.available()
    assert not ok and "nvidia-ml-py" in why
    with pytest.raises(EdgeBranchyError, match="nvidia-ml-py"):
        NvmlMeter().start()


def test_no_driver(monkeypatch):
    mod, _ = fake_pynvml([], init_error=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    ok, why = NvmlMeter.available()
    assert not ok and "driver" in why.lower()


def test_counter_unsupported(monkeypatch):
    events = []
    mod, _ = fake_pynvml(events, not_supported=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    ok, why = NvmlMeter.available()
    assert not ok and "Volta" in why
    assert events.count("init") == events.count("shutdown")


def test_device_index_out_of_range(monkeypatch):
    mod, _ = fake_pynvml([], count=1)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    ok, why = NvmlMeter.available(device_index=3)
    assert not ok and "no GPU 3" in why
    ok, why = NvmlMeter.available(device_index=0)
    assert ok and "H100" in why


def test_counter_going_backwards(monkeypatch):
    mod, counter = fake_pynvml([])
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = NvmlMeter()
    meter.start()
    counter["mj"] -= 5
    with pytest.raises(EdgeBranchyError, match="backwards"):
        meter.stop()
