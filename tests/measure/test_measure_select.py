import sys

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.estimate import EstimateMeter
from edgebranchy.measure.power.rapl import RaplMeter
from edgebranchy.measure.power.select import AUTO_ORDER, select_meter
from edgebranchy.measure.power.tegrastats import TegrastatsMeter
from edgebranchy.device.profile_loading import load_profile

PC = "sys/class/powercap"


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """A machine with no power source but the estimate: empty sysfs, no tegrastats, no pynvml."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    return {"sysfs_root": tmp_path / "root", "tegrastats_executable": str(tmp_path / "no-tegrastats")}


def test_auto_falls_to_the_estimate_and_says_why(bare):
    meter, why = select_meter(load_profile("x86-cpu"), **bare)
    assert isinstance(meter, EstimateMeter) and meter.kind == "estimated"
    for source in AUTO_ORDER[:-1]:
        assert f"{source}: " in why
    assert "chose estimate" in why and "not found" in why and "nvidia-ml-py" in why and "RAPL" in why


def test_auto_takes_rapl_when_readable(bare, tree):
    tree(bare["sysfs_root"], {
        f"{PC}/intel-rapl:0/name": "package-0", f"{PC}/intel-rapl:0/energy_uj": "10",
        f"{PC}/intel-rapl:0/max_energy_range_uj": "1000000",
    })
    meter, why = select_meter(load_profile("x86-cpu"), **bare)
    assert isinstance(meter, RaplMeter)
    assert "chose rapl" in why and "tegrastats: " in why and "nvml: " in why


def test_named_source_unavailable_is_refused(bare):
    with pytest.raises(EdgeBranchyError) as e:
        select_meter(load_profile("x86-cpu"), "rapl", **bare)
    msg = str(e.value)
    assert "'rapl'" in msg and "`power` rapl" in msg and "no RAPL package domains" in msg and "`power` estimate" in msg
    assert "--" not in msg  # the library names the setting; the CLI shows its flag (cli/_flags.py)
    with pytest.raises(EdgeBranchyError, match="profile jetson-nano"):
        select_meter(load_profile("jetson-nano"), **bare)  # profile names tegrastats; none here
    with pytest.raises(EdgeBranchyError, match="nvidia-ml-py"):
        select_meter(load_profile("x86-nvidia-gpu"), **bare)


def test_override_estimate_on_a_jetson_profile(bare):
    meter, why = select_meter(load_profile("jetson-orin-nano"), "estimate", **bare)
    assert isinstance(meter, EstimateMeter)
    assert why.startswith("estimate (--power estimate)") and "jetson-orin-nano" in why


def test_profile_source_tegrastats_is_used(bare, fake_tegrastats, fixtures_dir):
    bare["tegrastats_executable"] = fake_tegrastats(fixtures_dir / "tegrastats_alternating.log")
    meter, why = select_meter(load_profile("jetson-nano"), **bare)
    try:
        assert isinstance(meter, TegrastatsMeter) and meter.total_rail == "POM_5V_IN"
        assert "profile jetson-nano [power].source" in why and "POM_5V_IN" in why
    finally:
        meter.close()


def test_unknown_override(bare):
    with pytest.raises(EdgeBranchyError, match="choose one of auto, tegrastats"):
        select_meter(load_profile("x86-cpu"), "multimeter", **bare)


def test_jetson_profile_in_a_container_uses_ina3221_and_says_so(bare, tree):
    """Inside the Jetson container there is no tegrastats but the INA3221 sysfs files are there (issue 11
    item 9): the profile's tegrastats falls back to them, the reason names both; --power tegrastats does not."""
    from edgebranchy.measure.power.ina3221 import Ina3221Meter

    d = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon2"
    tree(bare["sysfs_root"], {f"{d}/in1_label": "VDD_IN\n", f"{d}/in1_input": "5000\n", f"{d}/curr1_input": "1200\n"})
    meter, why = select_meter(load_profile("jetson-orin-nano"), **bare)
    assert isinstance(meter, Ina3221Meter)
    assert why.startswith("ina3221 instead of tegrastats (profile jetson-orin-nano [power].source)")
    assert "not found" in why and "VDD_IN" in why
    with pytest.raises(EdgeBranchyError, match="'tegrastats'"):
        select_meter(load_profile("jetson-orin-nano"), "tegrastats", **bare)
