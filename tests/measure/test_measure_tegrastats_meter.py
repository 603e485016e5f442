import time

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.meter import integrate_mw
from edgebranchy.measure.power.tegrastats import TegrastatsMeter


def test_integrate_constant_ramp_and_edges():
    assert integrate_mw([0.0, 1.0, 2.0], [1000, 1000, 1000], 0.5, 1.5) == (pytest.approx(1.0), 1)
    # linear 0 -> 2000 mW over 2 s: exact trapezoid
    assert integrate_mw([0.0, 2.0], [0, 2000], 0.0, 2.0)[0] == pytest.approx(2.0)
    # window inside one interval: interpolated, no sample inside
    assert integrate_mw([0.0, 2.0], [0, 2000], 0.5, 1.5) == (pytest.approx(1.0), 0)
    # held at the first/last sample outside the samples
    assert integrate_mw([1.0, 2.0], [3000, 3000], 0.0, 3.0)[0] == pytest.approx(9.0)
    with pytest.raises(EdgeBranchyError):
        integrate_mw([], [], 0.0, 1.0)


def test_meter_integrates_constant_power(fake_tegrastats, fixtures_dir):
    exe = fake_tegrastats(fixtures_dir / "tegrastats_constant.log")
    with TegrastatsMeter(interval_ms=20, executable=exe) as meter:
        for _ in range(2):  # the process stays up across windows
            meter.start()
            time.sleep(0.4)
            r = meter.stop()
            assert (r.source, r.kind) == ("tegrastats", "measured")
            assert r.watts == pytest.approx(5.0, rel=0.01)
            assert r.joules == pytest.approx(5.0 * r.seconds, rel=0.01)
            assert r.seconds == pytest.approx(0.4, abs=0.1)
            assert r.samples >= 5
        assert meter.describe()["total_rail"] == "VDD_IN"


def test_meter_averages_varying_power(fake_tegrastats, fixtures_dir):
    exe = fake_tegrastats(fixtures_dir / "tegrastats_alternating.log")
    with TegrastatsMeter(interval_ms=20, executable=exe) as meter:
        meter.start()
        time.sleep(0.5)
        r = meter.stop()
    assert 4.0 <= r.watts <= 6.0
    assert r.watts == pytest.approx(5.0, abs=0.4)
    assert meter.describe()["total_rail"] == "POM_5V_IN"


def test_missing_binary_is_reported(tmp_path):
    exe = str(tmp_path / "no-such-tegrastats")
    ok, why = TegrastatsMeter.available(executable=exe)
    assert not ok and "not found" in why
    with pytest.raises(EdgeBranchyError, match="not found"):
        TegrastatsMeter(executable=exe).start()


def test_probe_reports_rails(fake_tegrastats, fixtures_dir):
    exe = fake_tegrastats(fixtures_dir / "tegrastats_constant.log")
    ok, why = TegrastatsMeter.available(executable=exe, interval_ms=20, probe=True)
    assert ok and "VDD_IN" in why


def test_lines_without_rails_fail_at_start(fake_tegrastats, tmp_path, tegrastats_cases):
    log = tmp_path / "norails.log"
    log.write_text("\n".join(tegrastats_cases["no_rails"]) + "\n")
    meter = TegrastatsMeter(interval_ms=20, executable=fake_tegrastats(log), startup_timeout_s=5.0)
    with pytest.raises(EdgeBranchyError, match="root"):
        meter.start()
    ok, why = TegrastatsMeter.available(executable=fake_tegrastats(log), interval_ms=20, probe=True)
    assert not ok and "no power rails" in why


def test_process_that_exits_is_reported(fake_tegrastats, fixtures_dir):
    exe = fake_tegrastats(fixtures_dir / "tegrastats_constant.log", exit_after=2)
    meter = TegrastatsMeter(interval_ms=20, executable=exe)
    meter.start()
    time.sleep(0.3)
    with pytest.raises(EdgeBranchyError, match="stopped"):
        meter.stop()
    meter.close()


def test_configured_total_rail_missing_is_an_error(fake_tegrastats, fixtures_dir):
    exe = fake_tegrastats(fixtures_dir / "tegrastats_constant.log")
    meter = TegrastatsMeter(interval_ms=20, executable=exe, total_rail="VIN", startup_timeout_s=5.0)
    with pytest.raises(EdgeBranchyError, match="'VIN' not found"):
        meter.start()


def test_window_misuse_and_bad_interval(fake_tegrastats, fixtures_dir):
    with pytest.raises(EdgeBranchyError):
        TegrastatsMeter(interval_ms=0)
    meter = TegrastatsMeter(interval_ms=20, executable=fake_tegrastats(fixtures_dir / "tegrastats_constant.log"))
    with meter:
        with pytest.raises(EdgeBranchyError, match="without start"):
            meter.stop()
        meter.start()
        with pytest.raises(EdgeBranchyError, match="twice"):
            meter.start()


def test_unclosed_meter_stops_tegrastats_at_exit(fake_tegrastats, fixtures_dir):
    import os
    import subprocess
    import sys

    exe = fake_tegrastats(fixtures_dir / "tegrastats_constant.log")
    code = (
        "from edgebranchy.measure.power.tegrastats import TegrastatsMeter\n"
        f"m = TegrastatsMeter(interval_ms=20, executable={exe!r})\n"
        "m.start()\n"
        "print(m._proc.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    pid = int(out.stdout.split()[0])
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
