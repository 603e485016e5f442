import os
import time

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.ina3221 import Ina3221Meter, find_rails

JP5 = "sys/bus/i2c/drivers/ina3221"
JP4 = "sys/bus/i2c/drivers/ina3221x"


def orin_nano_jp5(tree, root):
    """Orin Nano, JetPack 5/6: one INA3221 at 1-0040; hwmon number is arbitrary."""
    d = f"{JP5}/1-0040/hwmon/hwmon7"
    return tree(root, {
        f"{d}/name": "ina3221\n",
        f"{d}/in1_label": "VDD_IN\n", f"{d}/in1_input": "5000\n", f"{d}/curr1_input": "1000\n",
        f"{d}/in2_label": "VDD_CPU_GPU_CV\n", f"{d}/in2_input": "5000\n", f"{d}/curr2_input": "200\n",
        f"{d}/in3_label": "VDD_SOC\n", f"{d}/in3_input": "5000\n", f"{d}/curr3_input": "300\n",
        f"{d}/in4_input": "12\n",  # shunt voltage: not a rail
        f"{d}/in7_label": "sum of shunt voltages\n", f"{d}/in7_input": "40\n",  # no current: not a rail
    })


def test_jp5_rails_found_by_label(tree, tmp_path):
    orin_nano_jp5(tree, tmp_path)
    rails = find_rails(tmp_path)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert [r.read_mw() for r in rails] == [5000.0, 1000.0, 1500.0]
    ok, why = Ina3221Meter.available(root=tmp_path)
    assert ok and "total from VDD_IN" in why


def test_jp5_meter_energy_matches_power_times_time(tree, tmp_path):
    orin_nano_jp5(tree, tmp_path)
    with Ina3221Meter(root=tmp_path, interval_ms=20) as meter:
        meter.start()
        time.sleep(0.3)
        r = meter.stop()
    assert (r.source, r.kind) == ("ina3221", "measured")
    assert r.watts == pytest.approx(5.0, rel=1e-6)
    assert r.joules == pytest.approx(5.0 * r.seconds, rel=1e-6)
    assert r.samples >= 5


def replace(path, text):
    """Rewrite a file atomically, as a sysfs read never sees half a value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_jp5_meter_follows_a_change(tree, tmp_path):
    orin_nano_jp5(tree, tmp_path)
    curr = tmp_path / f"{JP5}/1-0040/hwmon/hwmon7/curr1_input"
    replace(curr, "400\n")  # 2 W
    meter = Ina3221Meter(root=tmp_path, interval_ms=10)
    meter.start()
    time.sleep(0.25)
    replace(curr, "1200\n")  # 6 W
    time.sleep(0.25)
    r = meter.stop()
    assert 3.0 < r.watts < 5.0


def test_agx_orin_two_chips_nc_skipped_and_summed(tree, tmp_path):
    a, b = f"{JP5}/1-0040/hwmon/hwmon3", f"{JP5}/1-0041/hwmon/hwmon4"
    tree(tmp_path, {
        f"{a}/in1_label": "VDD_GPU_SOC", f"{a}/in1_input": "5000", f"{a}/curr1_input": "600",
        f"{a}/in2_label": "VDD_CPU_CV", f"{a}/in2_input": "5000", f"{a}/curr2_input": "100",
        f"{a}/in3_label": "VIN_SYS_5V0", f"{a}/in3_input": "5000", f"{a}/curr3_input": "500",
        f"{b}/in1_label": "NC", f"{b}/in1_input": "0", f"{b}/curr1_input": "0",
        f"{b}/in2_label": "VDDQ_VDD2_1V8AO", f"{b}/in2_input": "5000", f"{b}/curr2_input": "80",
        f"{b}/in3_label": "NC", f"{b}/in3_input": "0", f"{b}/curr3_input": "0",
    })
    assert [r.name for r in find_rails(tmp_path)] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    meter = Ina3221Meter(root=tmp_path, interval_ms=20)
    meter.start()
    time.sleep(0.1)
    r = meter.stop()
    assert r.watts == pytest.approx((3000 + 500 + 2500 + 400) / 1000, rel=1e-6)
    assert meter.describe()["total_rail"] == "sum"


def test_jp4_iio_layout(tree, tmp_path):
    d = f"{JP4}/6-0040/iio:device0"
    tree(tmp_path, {
        f"{d}/rail_name_0": "POM_5V_IN\n", f"{d}/in_power0_input": "4520\n",
        f"{d}/rail_name_1": "POM_5V_GPU\n", f"{d}/in_power1_input": "0\n",
        f"{d}/rail_name_2": "POM_5V_CPU\n", f"{d}/in_power2_input": "1078\n",
    })
    assert {r.name: r.read_mw() for r in find_rails(tmp_path)} == {"POM_5V_IN": 4520, "POM_5V_GPU": 0, "POM_5V_CPU": 1078}
    meter = Ina3221Meter(root=tmp_path, interval_ms=20)
    meter.start()
    time.sleep(0.2)
    r = meter.stop()
    assert r.watts == pytest.approx(4.52, rel=1e-6)


def test_configured_total_rail(tree, tmp_path):
    orin_nano_jp5(tree, tmp_path)
    meter = Ina3221Meter(root=tmp_path, interval_ms=20, total_rail="VDD_SOC")
    meter.start()
    r = meter.stop()
    assert r.watts == pytest.approx(1.5)
    ok, why = Ina3221Meter.available(root=tmp_path, total_rail="VIN")
    assert not ok and "'VIN' not found" in why


def test_no_sensors(tmp_path):
    ok, why = Ina3221Meter.available(root=tmp_path)
    assert not ok and "no INA3221 rails" in why
    with pytest.raises(EdgeBranchyError, match="no INA3221 rails"):
        Ina3221Meter(root=tmp_path).start()


def test_unreadable_value_is_reported(tree, tmp_path):
    orin_nano_jp5(tree, tmp_path)
    (tmp_path / f"{JP5}/1-0040/hwmon/hwmon7/in1_input").write_text("garbage\n")
    ok, why = Ina3221Meter.available(root=tmp_path)
    assert not ok and "VDD_IN" in why
