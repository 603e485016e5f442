"""Power provenance: what each figure covers, windows too short for the sensor, sources that return nothing."""
from __future__ import annotations

import sys
import time

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.meter import EnergyReading, Provenance, rail_provenance, window_flag
from edgebranchy.measure.power.estimate import EstimateMeter
from edgebranchy.measure.power.ina3221 import Ina3221Meter
from edgebranchy.measure.power.nvml import NvmlMeter
from edgebranchy.measure.power.rapl import RaplMeter
from edgebranchy.measure.power.select import select_meter
from edgebranchy.measure.power.tegrastats import TegrastatsMeter
from edgebranchy.device.profile_loading import load_profile

from test_measure_ina3221 import JP5, orin_nano_jp5
from test_measure_nvml import fake_pynvml
from test_measure_rapl import rapl_tree

SAMPLED = Provenance("module-input-rail", "VDD_IN", "sampled-power", 0.1, 0.1)
COUNTER = Provenance("gpu-board", "GPU 0", "energy-counter", 0.1, None)


def test_window_flags():
    assert window_flag(5.0, 2.0, 20, "measured", SAMPLED) is None
    assert "only 3 power sample(s)" in window_flag(5.0, 2.0, 3, "measured", SAMPLED)
    assert "shorter than 10 x the sensor's 0.1 s" in window_flag(1.0, 0.5, 2, "measured", COUNTER)
    assert "returned no energy" in window_flag(0.0, 2.0, 2, "measured", COUNTER)
    assert window_flag(0.0, 2.0, 2, "estimated", Provenance("estimate", "e", "model", 0.01, None)) is None
    assert window_flag(1.0, 0.01, 1, "measured", None) is None  # unstated provenance: nothing to judge by


def test_reading_carries_provenance_and_flag():
    r = EnergyReading.from_window(1.0, 0.2, 2, "nvml", "measured", COUNTER)
    assert not r.usable and "shorter than" in r.flag
    d = r.to_dict()
    assert d["provenance"] == {"covers": "gpu-board", "detail": "GPU 0", "method": "energy-counter",
                               "sensor_update_s": 0.1, "sampling_interval_s": None}
    assert EnergyReading.from_window(3.0, 1.5, 2, "nvml", "measured", COUNTER).usable
    with pytest.raises(ValueError, match="covers"):
        Provenance("whole-house", "x", "model", None, None)


def test_rail_provenance_names_what_the_total_covers():
    assert rail_provenance("VDD_IN", ["VDD_IN", "VDD_SOC"], 0.1).covers == "module-input-rail"
    s = rail_provenance("sum", ["VDD_GPU_SOC", "VDD_CPU_CV"], 0.1)
    assert s.covers == "rail-sum" and "VDD_GPU_SOC, VDD_CPU_CV" in s.detail and "carrier board" in s.detail
    assert rail_provenance("VDD_SOC", None, 0.1).covers == "named-rail"


def test_ina3221_readings_say_what_they_cover(tree, tmp_path):
    orin_nano_jp5(tree, tmp_path)
    with Ina3221Meter(root=tmp_path, interval_ms=20) as meter:
        meter.start()
        time.sleep(0.25)
        ok = meter.stop()
        meter.start()
        short = meter.stop()
    prov = ok.provenance
    assert prov["covers"] == "module-input-rail" and prov["method"] == "sampled-power"
    assert prov["sampling_interval_s"] == 0.02 and prov["sensor_update_s"] == 0.1
    assert "VDD_IN" in prov["detail"] and "carrier board" in prov["detail"]
    assert ok.flag is not None and "shorter than 10 x" in ok.flag  # 0.25 s < 10 x 0.1 s
    assert short.flag is not None and not short.usable


def test_estimate_and_rapl_provenance(tree, tmp_path):
    est = EstimateMeter(4.4, p_max_w=7.86, cores=4)
    est.start()
    time.sleep(0.15)
    r = est.stop()
    assert r.provenance["covers"] == "estimate" and r.provenance["method"] == "model" and r.usable
    rapl_tree(tree, tmp_path)
    m = RaplMeter(root=tmp_path)
    m.start()
    rr = m.stop()
    assert rr.provenance["covers"] == "cpu-package" and rr.provenance["method"] == "energy-counter"
    assert "package-0, package-1" in rr.provenance["detail"]


# -- sources that return nothing are refused at selection, with the reason ------------------------

def _orin_nvml(events, counter_mj=0):
    """pynvml as on a Jetson Orin: the device opens, power usage is NotSupported, the counter reads 0."""
    mod, counter = fake_pynvml(events, counter={"mj": counter_mj})

    def power(handle):
        raise mod.NVMLError_NotSupported("Not Supported")

    mod.nvmlDeviceGetPowerUsage = power
    mod.nvmlDeviceGetName = lambda h: b"Orin (nvgpu)"
    return mod


def test_nvml_without_power_is_refused(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", _orin_nvml([]))
    ok, why = NvmlMeter.available()
    assert not ok and "returns no power" in why and "tegrastats" in why
    with pytest.raises(EdgeBranchyError, match="power source 'nvml' .* returns no power"):
        select_meter(load_profile("x86-cpu"), "nvml", sysfs_root=tmp_path)
    # auto passes over it and says why
    meter, reason = select_meter(load_profile("x86-cpu"), "auto", sysfs_root=tmp_path,
                                 tegrastats_executable=str(tmp_path / "none"))
    assert meter.name == "estimate" and "nvml: GPU 0 (Orin (nvgpu)) returns no power" in reason
    # a counter that works is accepted even without power usage
    monkeypatch.setitem(sys.modules, "pynvml", _orin_nvml([], counter_mj=123))
    assert NvmlMeter.available()[0]


def test_nvml_counter_not_supported_reason(monkeypatch):
    mod, _ = fake_pynvml([], not_supported=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    ok, why = NvmlMeter.available()
    assert not ok and "returns no energy" in why and "not supported" in why


def test_rapl_and_ina3221_reading_zero_are_refused(tree, tmp_path):
    rapl_tree(tree, tmp_path / "r", pkg0=0, pkg1=0)
    ok, why = RaplMeter.available(root=tmp_path / "r")
    assert not ok and "read 0" in why and "returns no energy" in why
    root = tmp_path / "j"
    orin_nano_jp5(tree, root)
    for k in (1, 2, 3):
        (root / f"{JP5}/1-0040/hwmon/hwmon7/curr{k}_input").write_text("0\n")
    ok, why = Ina3221Meter.available(root=root)
    assert not ok and "read 0 mW" in why


def test_tegrastats_rails_reading_zero_are_refused(fake_tegrastats, tmp_path):
    log = tmp_path / "zero.log"
    log.write_text("RAM 1180/3965MB CPU [2%@1479] GPU@59C VDD_IN 0mW/0mW VDD_SOC 0mW/0mW\n")
    ok, why = TegrastatsMeter.available(interval_ms=20, executable=fake_tegrastats(log), probe=True)
    assert not ok and "read 0 mW" in why


@pytest.mark.parametrize("prov", [SAMPLED, COUNTER, Provenance("cpu-package", "RAPL", "energy-counter", 0.001, None),
                                  Provenance("rail-sum", "rails", "sampled-power", 0.02, 0.25)])
def test_the_shortest_window_is_one_the_flag_lets_through(prov):
    """bench lengthens its trial windows to shortest_window_s: a window that long (with the samples a sampled
    source takes in it, the first at the start) gives a figure; one 10% shorter does not."""
    from edgebranchy.bench.run import trial_window
    from edgebranchy.measure.power.meter import shortest_window_s

    t = shortest_window_s(prov)
    samples = lambda s: int(s / prov.sampling_interval_s) if prov.sampling_interval_s else 2  # noqa: E731
    assert window_flag(1.0, t, samples(t), "measured", prov) is None
    assert window_flag(1.0, 0.9 * t, samples(0.9 * t), "measured", prov) is not None
    notes = []
    assert trial_window(None, prov, notes.append) == max(0.4, t)  # the default: 0.4 s, or what the source needs
    assert bool(notes) == (t > 0.4)
    assert trial_window(0.05, prov, notes.append) == 0.05  # a window given is kept (its energy is flagged)
    assert trial_window(None, None, notes.append) == 0.4  # no provenance: any window
