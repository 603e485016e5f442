"""Result-side checks: usable-energy medians, throttle summary, external merge onto trials, drift, TrialWatch."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.measure.conditions import ConditionsReader
from edgebranchy.measure.power.meter import EnergyReading, Provenance
from edgebranchy.bench.quality import energy_summary, exit_drift, merge_external, throttle_line, throttle_summary
from edgebranchy.measure.throttle import TrialWatch

from jetson_fakes import orin_tree
from test_measure_external import POWER, meter_samples, schedule

PROV = Provenance("module-input-rail", "VDD_IN", "sampled-power", 0.1, 0.1)


def _trial(t, variant, joules, seconds, samples, lat, throttled=False):
    r = EnergyReading.from_window(joules, seconds, samples, "ina3221", "measured", PROV)
    return {"trial": t, "variant": variant, "inferences": 100, "latency_ms": lat, "energy": r.to_dict(),
            "dynamic_per_inference_mj": (joules - 2.0 * seconds) / 100 * 1e3,
            "conditions": {"throttled": throttled, "reasons": ["gpu-thermal passed passive"] if throttled else []}}


def test_energy_summary_uses_only_usable_windows():
    recs = [_trial(0, "baseline", 5.0, 1.0, 10, [1.0]), _trial(1, "baseline", 6.0, 1.2, 12, [1.0]),
            _trial(2, "baseline", 0.4, 0.08, 1, [1.0])]   # too short: flagged
    s = energy_summary(recs)
    assert s["usable_trials"] == 2 and s["trials_total"] == 3 and s["refused"][0]["trial"] == 2
    assert "power sample" in s["refused"][0]["flag"]
    assert s["per_inference_mj"]["median"] == pytest.approx(55.0) and s["per_inference_mj"]["n"] == 2
    s = energy_summary([recs[2]])
    assert s["per_inference_mj"] is None and s["refused"]


def test_throttle_summary_and_line():
    trials = {"baseline": [_trial(0, "baseline", 5, 1, 10, [1.0, 1.1]), _trial(1, "baseline", 5, 1, 10, [2.0, 2.2],
                                                                                 throttled=True)],
              "branchy": [_trial(0, "branchy", 4, 1, 10, [0.5]), _trial(1, "branchy", 4, 1, 10, [0.6])]}
    s = throttle_summary(trials)
    assert s["throttled"] == 1 and s["trials"] == 4
    assert s["variants"]["baseline"]["throttled_trials"] == [1]
    assert s["variants"]["baseline"]["p50_ms"] == pytest.approx(1.55)
    assert s["variants"]["baseline"]["p50_unthrottled_ms"] == pytest.approx(1.05)
    line = throttle_line(s)
    assert line.startswith("throttling: 1 of 4 trials throttled (gpu-thermal passed passive)")
    assert "baseline p50 1.55 -> 1.05 ms" in line
    assert throttle_line(None).startswith("throttling: not checked")
    for recs in trials.values():
        for r in recs:
            r.pop("conditions")
    assert throttle_summary(trials) is None


def test_external_meter_lands_on_the_right_trials(tmp_path):
    sched, end = schedule(trials=3)
    t_meter, w = meter_samples(sched, end, clock_offset=-3.2)
    f = tmp_path / "meter.csv"
    f.write_text("time_s,power_mw\n" + "".join(f"{a - t_meter[0]:.4f},{b * 1000:.1f}\n" for a, b in zip(t_meter, w)))
    trials = {"baseline": [], "branchy": []}
    for i, (name, a, b) in enumerate(sched):
        trials[name].append({"trial": i // 2, "variant": name, "inferences": 50,
                             "window": {"start_unix": a, "end_unix": b}})
    info = merge_external(str(f), trials, log=lambda s: None)
    assert info["alignment"]["residual_s"] < 0.03
    for name, recs in trials.items():
        for r in recs:
            assert r["external_energy"]["watts"] == pytest.approx(POWER[name], rel=0.03)
    s = energy_summary(trials["baseline"], key="external_energy")
    assert s["source"] == "external" and s["provenance"]["covers"] == "board-external"
    assert s["per_inference_mj"]["median"] == pytest.approx(POWER["baseline"] * 1.0 / 50 * 1e3, rel=0.03)


def test_exit_drift_record():
    m = {"exits": [{"model_exit": 0}, {"model_exit": 1}],
         "calibration": {"validation": {"exit_fractions": [0.5, 0.5], "n": 500}}}
    d = exit_drift([90, 410], m, overridden=False)
    assert d["drifted"] and d["line"].startswith("warning: exit rates drifted")
    assert exit_drift([250, 250], m, overridden=False)["drifted"] is False
    assert exit_drift([90, 410], m, overridden=True) is None


def test_trial_watch_records_window_and_throttle(tmp_path):
    root = orin_tree(tmp_path)
    watch = TrialWatch(ConditionsReader(root, which=lambda n: None))
    watch.begin()
    orin_tree(root, temps={"cpu-thermal": 101.0})
    rec = {}
    watch.end(rec)
    assert rec["window"]["end_unix"] >= rec["window"]["start_unix"]
    c = rec["conditions"]
    assert c["throttled"] and "cpu-thermal at 101.0 C at the end" in c["reasons"][0]
    assert c["start"]["thermal"][0]["temp_c"] == pytest.approx(48.5)
    plain = TrialWatch()
    plain.begin()
    rec = {}
    plain.end(rec)
    assert "conditions" not in rec and "window" in rec
    assert np.isfinite(rec["window"]["start_unix"])
