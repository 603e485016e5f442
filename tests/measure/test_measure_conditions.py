"""Run conditions, the throttle detector, the warm-up criterion and --lock-clocks, on fake Jetson trees and tools."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.conditions import ConditionsReader, parse_jetson_clocks_show, read_thermal, summary_line
from edgebranchy.measure.lock_clocks import LockedClocks
from edgebranchy.measure.throttle import throttle_reasons, trial_conditions
from edgebranchy.measure.warmup import WarmupCriterion, is_stable, warm_up

from jetson_fakes import SHOW_LOCKED, SHOW_UNLOCKED, calls, fake_tools, orin_tree


def _which(bin_dir: Path):
    return lambda name: shutil.which(name, path=str(bin_dir))


def test_snapshot_reads_every_source(tmp_path):
    root = orin_tree(tmp_path / "root", temps={"tj-thermal": 61.25})
    bin_dir = fake_tools(tmp_path / "bin", mode="30W", mode_id=2)
    snap = ConditionsReader(root, which=_which(bin_dir)).read()
    assert [c["cpu"] for c in snap["cpus"]] == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert snap["cpus"][0] == {"cpu": "cpu0", "cur_khz": 2201600, "min_khz": 729600, "max_khz": 2201600,
                               "governor": "schedutil"}
    assert snap["governor"] == "schedutil"
    assert snap["gpu"][0]["name"] == "17000000.ga10b" and snap["gpu"][0]["cur_hz"] == 1300500000
    tj = next(z for z in snap["thermal"] if z["type"] == "tj-thermal")
    assert tj["temp_c"] == pytest.approx(61.25)
    assert [t["type"] for t in tj["trips"]] == ["active", "passive", "critical"]
    fans = {f["name"]: f for f in snap["fans"]}
    assert fans["pwmfan"]["pwm"] == {"pwm1": 77} and fans["pwm_tach"]["rpm"] == {"rpm": 2350}
    assert "ina3221" not in fans  # no pwm and no tachometer: not a fan
    assert snap["power_mode"] == {"name": "30W", "id": 2}
    assert snap["clocks_locked"] is False and snap["jetson_clocks"]["emc"]["override"] == 0
    line = summary_line(snap)
    assert "power mode 30W (2)" in line and "NOT locked" in line and "tj-thermal 61.2 C" in line
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap


def test_snapshot_without_tools_or_sysfs(tmp_path):
    snap = ConditionsReader(tmp_path, which=lambda n: None).read()
    assert snap["cpus"] == [] and snap["thermal"] == [] and snap["fans"] == []
    assert snap["power_mode"] is None and snap["jetson_clocks"] is None and snap["clocks_locked"] is None
    assert summary_line(snap) == "no run conditions readable here"


def test_jetson_clocks_show_parse():
    u, l = parse_jetson_clocks_show(SHOW_UNLOCKED), parse_jetson_clocks_show(SHOW_LOCKED)
    assert u["locked"] is False and l["locked"] is True
    assert u["cpus"][1] == {"cpu": "cpu1", "online": 1, "governor": "schedutil", "min_khz": 729600,
                            "max_khz": 2201600, "cur_khz": 729600}
    assert l["gpu"] == {"min_hz": 1300500000, "max_hz": 1300500000, "cur_hz": 1300500000}
    assert u["power_mode"] == "MAXN"
    # locked CPUs but EMC not overridden: not locked
    assert parse_jetson_clocks_show(SHOW_LOCKED.replace("FreqOverride=1", "FreqOverride=0"))["locked"] is False
    assert parse_jetson_clocks_show("garbage\n")["locked"] is None


def test_jetson_clocks_show_failure_is_reported(tmp_path):
    bin_dir = fake_tools(tmp_path / "bin", fail="--show")
    jc = ConditionsReader(tmp_path, which=_which(bin_dir)).jetson_clocks_show()
    assert "exited 1" in jc["error"] and "root" in jc["error"]


def test_throttle_flags_a_zone_past_its_passive_trip(tmp_path):
    root = orin_tree(tmp_path / "r")
    reader = ConditionsReader(root, which=lambda n: None)
    a = reader.read(tools=False)
    orin_tree(root, temps={"gpu-thermal": 99.5})
    b = reader.read(tools=False)
    reasons = throttle_reasons(a, b)
    assert len(reasons) == 1 and "gpu-thermal at 99.5 C at the end" in reasons[0] and "passive" in reasons[0]
    rec = trial_conditions(a, b)
    assert rec["throttled"] and rec["hottest_c"] == [pytest.approx(49.2), pytest.approx(99.5)]
    # an active trip (the fan's) is not throttling
    orin_tree(root, temps={"gpu-thermal": 60.0})
    assert throttle_reasons(a, reader.read(tools=False)) == []


def test_throttle_flags_clock_caps_and_locked_drops(tmp_path):
    root = orin_tree(tmp_path / "r")
    reader = ConditionsReader(root, which=lambda n: None)
    a = reader.read(tools=False)
    orin_tree(root, cpu_max=1497600, cpu_cur=1497600)           # thermal cap lowered the CPU max
    reasons = throttle_reasons(a, reader.read(tools=False))
    assert len(reasons) == 4 and all("clock cap lowered" in r for r in reasons)
    # a dynamic governor lowering the current GPU clock is not throttling ...
    orin_tree(root, gpu_cur=306000000)
    assert throttle_reasons(a, reader.read(tools=False)) == []
    # ... but a locked GPU clock dropping is
    orin_tree(root, gpu_min=1300500000)
    locked = reader.read(tools=False)
    orin_tree(root, gpu_min=1300500000, gpu_cur=918000000)
    (r,) = throttle_reasons(locked, reader.read(tools=False))
    assert "locked 17000000.ga10b clock dropped from 1300500000 to 918000000" in r


def test_real_thermal_zones_parse_where_present():
    zones = list(Path("/sys/class/thermal").glob("thermal_zone*"))
    if not zones:
        pytest.skip("this machine exposes no /sys/class/thermal/thermal_zone* (container or VM)")
    got = read_thermal(Path("/"))
    assert len(got) == len(zones)
    assert all(z["temp_c"] is None or -60 < z["temp_c"] < 150 for z in got)


def test_warmup_criterion():
    c = WarmupCriterion(window=5, rel_tol=0.05, max_cv=0.05, max_calls=100)
    assert not is_stable([1.0] * 14, c)          # fewer than 3 windows
    assert is_stable([1.0] * 15, c)
    assert not is_stable([1.0] * 10 + [5.0] * 5, c)  # last median 5x the previous
    assert not is_stable([2.0] * 5 + [1.0] * 5 + [1.02] * 5, c)  # last two agree, the three medians do not
    assert is_stable([3.0, 2.0, 1.5] + [1.0] * 15, c)
    # a bimodal workload (samples leave at different exits) settles on its window medians
    assert is_stable([0.2, 0.5, 0.2, 0.5, 0.2] * 3, c)
    with pytest.raises(EdgeBranchyError, match="3 x window"):
        WarmupCriterion(window=50, max_calls=120)


def test_warm_up_stops_when_stable_or_gives_up():
    lat = [9, 7, 5, 3] + [1] * 200          # ms per call: slow at first, then flat
    seq = []
    t = [0]

    def clock():
        return t[0]

    def call():
        t[0] += int(lat[len(seq)] * 1e6)
        seq.append(1)

    r = warm_up(call, WarmupCriterion(window=4, max_calls=100), clock=clock)
    assert r.stable and r.calls == 15 and r.median_ms == 1.0 and r.cv == 0.0
    seq.clear()
    lat[:] = [1.03 ** i for i in range(400)]  # drifting: 12% per window, never steady
    r = warm_up(call, WarmupCriterion(window=4, max_calls=40), clock=clock)
    assert not r.stable and r.calls == 40


def test_lock_clocks_stores_locks_and_restores(tmp_path):
    bin_dir = fake_tools(tmp_path / "bin")
    store = tmp_path / "dfs.conf"
    logs = []
    with LockedClocks(which=_which(bin_dir), store_file=store, log=logs.append):
        assert ConditionsReader(tmp_path, which=_which(bin_dir)).read()["clocks_locked"] is True
        assert store.exists()
    assert calls(bin_dir) == [["--store", str(store)], [], ["--show"], ["--restore", str(store)]]
    assert ConditionsReader(tmp_path, which=_which(bin_dir)).read()["clocks_locked"] is False


def test_lock_clocks_restores_after_an_error_and_ctrl_c(tmp_path):
    bin_dir = fake_tools(tmp_path / "bin")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with LockedClocks(which=_which(bin_dir), log=lambda s: None):
                raise exc
    made = calls(bin_dir)
    assert [c[0] if c else "" for c in made] == ["--store", "", "--restore"] * 2


def test_lock_clocks_refusals(tmp_path):
    with pytest.raises(EdgeBranchyError, match="needs the L4T jetson_clocks"):
        with LockedClocks(which=lambda n: None):
            pass
    bin_dir = fake_tools(tmp_path / "bin", fail="--store")
    with pytest.raises(EdgeBranchyError, match="--store .*exited 1"):
        with LockedClocks(which=_which(bin_dir), log=lambda s: None):
            pass
    assert [c[0] for c in calls(bin_dir)] == ["--store"]  # nothing locked, nothing to restore


def test_lock_clocks_restores_on_sigterm(tmp_path):
    """A real SIGTERM to a process holding the lock still runs --restore."""
    bin_dir = fake_tools(tmp_path / "bin")
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import shutil, time, pathlib
        from edgebranchy.measure.lock_clocks import LockedClocks
        with LockedClocks(which=lambda n: shutil.which(n, path={str(bin_dir)!r}), log=lambda s: None):
            pathlib.Path({str(ready)!r}).write_text("1")
            time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        for _ in range(600):
            if ready.exists():
                break
            import time
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()
    assert [c[0] if c else "" for c in calls(bin_dir)] == ["--store", "", "--restore"]
