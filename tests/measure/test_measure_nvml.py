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


def two_gpu_pynvml(events, counters, buses=(b"00000000:17:00.0", b"00000000:65:00.0")):
    """NVML with two GPUs in PCI order (index 0 at bus 0x17, index 1 at bus 0x65), each with its own counter."""
    mod, _ = fake_pynvml(events, count=len(buses))

    class PciInfo:
        def __init__(self, bus):
            self.busId = bus

    mod.nvmlDeviceGetPciInfo = lambda h: PciInfo(buses[h[1]])
    mod.nvmlDeviceGetName = lambda h: f"GPU at {buses[h[1]].decode()}".encode()
    mod.nvmlDeviceGetTotalEnergyConsumption = lambda h: counters[h[1]]
    return mod


def test_the_meter_measures_the_gpu_at_the_backends_pci_bus_id(monkeypatch):
    """Issue 23 item 7: NVML numbers GPUs in PCI order and ignores CUDA_VISIBLE_DEVICES, so "device 0" of CUDA
    can be NVML's device 1. Given CUDA's PCI bus id ("0000:65:00.0"; NVML writes "00000000:65:00.0") the meter
    reads that GPU's counter."""
    counters = [5_000, 7_000]
    monkeypatch.setitem(sys.modules, "pynvml", two_gpu_pynvml([], counters))
    meter = NvmlMeter(pci_bus_id="0000:65:00.0")
    meter.start()
    counters[0] += 99_000  # the other GPU is busy
    counters[1] += 2_500
    r = meter.stop()
    meter.close()
    assert r.joules == pytest.approx(2.5)
    d = meter.describe()
    assert (d["device_index"], d["pci_bus_id"], d["matched_by"]) == (1, "0000:65:00.0", "pci-bus-id")
    assert "matched by PCI bus id" in d["provenance"]["detail"]
    ok, why = NvmlMeter.available(pci_bus_id="0000:99:00.0")
    assert not ok and "no GPU at PCI bus id 0000:99:00.0" in why and "00000000:17:00.0" in why
    with pytest.raises(EdgeBranchyError, match="not a PCI bus id"):
        NvmlMeter(pci_bus_id="GPU-1234")


def test_bench_measures_the_gpu_the_tensorrt_backend_runs_on(monkeypatch, tiny_artifact, tmp_path):
    """The bench passes the backend's PCI bus id to the meter: with NVML index 0 another (busier) GPU, the energy
    is the backend GPU's."""
    import shutil

    from trt_double import assert_clean, install

    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.session import run_bench
    from edgebranchy.tensorrt.build import build_engines

    d = install(monkeypatch, "10.3.0", pci_bus_id="0000:65:00.0")
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    build_engines(art, {"precision": "fp32", "workspace_mb": 64, "builder_optimization_level": 3, "max_batch": 4,
                        "dla_core": -1, "gpu_fallback": False}, log=lambda s: None)
    counters = [1_000_000, 2_000_000]
    mod = two_gpu_pynvml([], counters)
    reads = []

    def energy(h):
        reads.append(h[1])
        counters[0] += 50_000  # GPU 0 (NVML order) burns 50 J per read, the backend's GPU 1 J
        counters[1] += 1_000
        return counters[h[1]]

    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    cfg = BenchConfig(artifact=str(art), out=str(tmp_path / "r.json"), backend="tensorrt", profile="x86-cpu",
                      power="nvml", dataset="synthetic", batch_size=1, samples=4, trials=1, warmup=1,
                      min_window_s=0.0, idle_s=0.0, segment_repeats=2)
    run = run_bench(cfg, log=lambda s: None, progress=False)["runs"][0]
    assert reads and set(reads) == {1}  # GPU 0's counter was never read
    meter = run["environment"]["power_meter"]
    assert (meter["pci_bus_id"], meter["device_index"], meter["gpu"]) == ("0000:65:00.0", 1,
                                                                           "GPU at 00000000:65:00.0")
    assert_clean(d)
