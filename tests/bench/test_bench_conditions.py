"""Bench with run conditions: a fake throttling thermal zone, --lock-clocks, an external meter, energy per exit."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebranchy.bench import run as bench_mod  # the module that measures one run
from edgebranchy.bench.config import BenchConfig
from edgebranchy.bench.session import run_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "measure"))
from jetson_fakes import calls, fake_tools, orin_tree  # noqa: E402


def _cfg(artifact, out, **kw):
    base = dict(artifact=str(artifact), out=str(out), backend="onnxruntime", profile="x86-cpu", power="estimate",
                dataset="synthetic", batch_size=1, samples=40, trials=3, warmup=2, min_window_s=0.12, idle_s=0.12,
                segment_repeats=5, warmup_max=200)
    base.update(kw)
    return BenchConfig(**base)


def test_fake_throttling_zone_flags_the_affected_trials(tiny_artifact, tmp_path, monkeypatch):
    root = orin_tree(tmp_path / "sys-root")
    bin_dir = fake_tools(tmp_path / "bin", mode="15W", mode_id=1)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")

    def heat(rec):
        # the GPU zone passes its passive trip (99 C) during trial (1, branchy) only
        if (rec["trial"], rec["variant"]) == (1, "baseline"):
            orin_tree(root, temps={"gpu-thermal": 101.5})
        elif (rec["trial"], rec["variant"]) == (1, "branchy"):
            orin_tree(root, temps={"gpu-thermal": 55.0})

    out = tmp_path / "r.json"
    warned = []
    res = run_bench(_cfg(tiny_artifact, out, conditions_root=str(root)), log=lambda s: None, progress=False,
                    on_trial=heat, warn=warned.append)["runs"][0]
    assert [w for w in warned if w.startswith("warning: throttling: 1 of 6 trials throttled")], warned
    lines = [json.loads(l) for l in (tmp_path / "r.json.jsonl").read_text().splitlines()]
    flagged = [(l["trial"], l["variant"]) for l in lines if l["type"] == "trial" and l["conditions"]["throttled"]]
    assert flagged == [(1, "branchy")]
    (rec,) = [l for l in lines if l["type"] == "trial" and l["conditions"]["throttled"]]
    assert "gpu-thermal at 101.5 C at the start passed its passive trip point 99.0 C" in rec["conditions"]["reasons"][0]
    th = res["conditions"]["throttle"]
    assert th["throttled"] == 1 and th["trials"] == 6 and th["variants"]["branchy"]["throttled_trials"] == [1]
    assert res["conditions"]["line"].startswith("throttling: 1 of 6 trials throttled")
    assert "branchy p50" in res["conditions"]["line"] and "->" in res["conditions"]["line"]
    assert res["environment"]["conditions_start"]["power_mode"] == {"name": "15W", "id": 1}
    assert res["conditions"]["end"]["clocks_locked"] is False
    w = res["conditions"]["warmup"]
    assert set(w) == {"baseline", "branchy"} and all(v["calls"] >= 2 for v in w.values())
    # energy per exit and the drift test come with every run that has energy
    epe = res["variants"]["branchy"]["energy_per_exit"]
    assert len(epe["per_exit_mj"]) == 2 and epe["per_exit_mj"][0] < epe["per_exit_mj"][1]
    assert epe["kind"] == "estimated" and epe["saving_from_macs"] is not None
    assert res["exit_drift"]["n"] == 40 and "expected_from" in res["exit_drift"]
    assert res["exit_drift"]["n_calibration"] == 200 and res["exit_drift"]["min_effect"] == 0.03
    # the report says how many trials throttled and what excluding them does
    from edgebranchy.report import build_report

    build_report([out], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "1 of 6 trials throttled" in md and "excluding them" in md
    assert (tmp_path / "rep" / "energy_per_exit.png").is_file()


def test_lock_clocks_around_the_bench(tiny_artifact, tmp_path, monkeypatch):
    bin_dir = fake_tools(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    res = run_bench(_cfg(tiny_artifact, tmp_path / "r.json", trials=1, conditions_root=str(tmp_path / "none"),
                         lock_clocks=True), log=lambda s: None, progress=False)["runs"][0]
    made = [c[0] if c else "" for c in calls(bin_dir)]
    assert made[:2] == ["--store", ""] and made[-1] == "--restore" and "--show" in made
    assert res["environment"]["conditions_start"]["clocks_locked"] is True
    assert res["environment"]["clocks_locked_by_bench"] is True


def test_external_meter_csv_lands_on_the_right_trials(tiny_artifact, tmp_path, monkeypatch):
    """A logger thread plays the USB meter: its own clock starts at 0, power follows the bench's windows."""
    levels = {"baseline": 6.0, "branchy": 4.2}
    state = {"watts": 2.5, "n": 0, "stop": False}

    class Watch(bench_mod.TrialWatch):
        def begin(self):
            super().begin()
            state["watts"] = levels["baseline" if state["n"] % 2 == 0 else "branchy"]

        def end(self, rec):
            state["watts"] = 2.5
            state["n"] += 1
            super().end(rec)

    monkeypatch.setattr(bench_mod, "TrialWatch", Watch)
    csv = tmp_path / "meter.csv"
    f = open(csv, "w")
    f.write("Time [s],Power [mW]\n")
    t_start = time.time() + 5.0  # the meter's zero, unknown to the bench

    def logger():
        while not state["stop"]:
            f.write(f"{time.time() - t_start:.4f},{state['watts'] * 1000:.1f}\n")
            f.flush()
            time.sleep(0.01)

    th = threading.Thread(target=logger, daemon=True)
    th.start()
    try:
        res = run_bench(_cfg(tiny_artifact, tmp_path / "r.json", min_window_s=0.5, gap_s=0.4,
                             external_power=str(csv), conditions=False), log=lambda s: None, progress=False)["runs"][0]
    finally:
        state["stop"] = True
        th.join()
        f.close()
    al = res["external_power"]["alignment"]
    assert al["offset_s"] == pytest.approx(t_start, abs=0.05)
    assert al["residual_s"] is not None and al["residual_s"] < 0.08
    for name in ("baseline", "branchy"):
        ext = res["variants"][name]["external_energy"]
        assert ext["source"] == "external" and ext["kind"] == "measured"
        assert ext["provenance"]["covers"] == "board-external" and ext["usable_trials"] == 3
        assert ext["watts"] == pytest.approx(levels[name], rel=0.1)
    assert res["conditions"]["throttle"] is None
