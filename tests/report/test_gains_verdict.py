"""artifact.gains and report.verdict on results documents: the numbers, their intervals, every warning."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from report_fixtures import build_results, second_run

from edgebranchy.artifact.gains import change, gains_of, run_gains
from edgebranchy.report.verdict import verdict_lines


def _run(**kw) -> dict:
    doc = build_results(**kw)
    del doc["schema"], doc["schema_version"]   # a run is the body of a v1 document
    return doc


def test_gains_are_the_ratios_with_intervals_around_them() -> None:
    run = _run()
    g = run_gains(run)
    b, r = run["variants"]["baseline"], run["variants"]["branchy"]
    for stat in ("p50", "mean"):
        ratio = b["latency_ms"][stat] / r["latency_ms"][stat]
        assert g[stat]["gain"] == pytest.approx(ratio)
        lo, hi = g[stat]["ci95"]
        assert lo < ratio < hi and hi - lo < 0.3 * ratio
    assert g["p99"]["change"] == pytest.approx(r["latency_ms"]["p99"] / b["latency_ms"]["p99"] - 1)
    e = g["energy"]
    assert e["gain"] == pytest.approx(b["energy"]["per_inference_mj"]["median"] / r["energy"]["per_inference_mj"]["median"])
    assert e["kind"] == "estimated" and e["ci95"][0] < e["gain"] < e["ci95"][1]
    assert g["exit_fractions"] == [0.94, 0.06] and g["early_fraction"] == pytest.approx(0.94)
    assert g == run_gains(copy.deepcopy(run))   # fixed seed: the same run gives the same numbers


def test_accuracy_difference_two_proportion_then_paired() -> None:
    run = _run()
    a = run_gains(run)["accuracy"]
    pb, pr, n = 0.8993, 0.8951, 10000
    half = 1.959964 * math.sqrt((pb * (1 - pb) + pr * (1 - pr)) / n) * 100
    assert a["method"] == "two-proportion" and a["n"] == n
    assert a["diff_points"] == pytest.approx(-0.42)
    assert a["ci95_points"] == pytest.approx([-0.42 - half, -0.42 + half])
    # per-sample correctness: paired on the same samples (90 right only for the baseline, 48 only for branchy)
    base = [1] * 8993 + [0] * 1007
    br = list(base)
    for i in range(90):
        br[i] = 0
    for i in range(8993, 8993 + 48):
        br[i] = 1
    run["variants"]["baseline"]["correct"], run["variants"]["branchy"]["correct"] = base, br
    p = run_gains(run)["accuracy"]
    assert p["method"] == "paired" and p["diff_points"] == pytest.approx(-0.42)
    assert p["ci95_points"][1] - p["ci95_points"][0] < 0.5 * 2 * half   # pairing removes the shared variance
    del run["variants"]["baseline"]["correct"], run["variants"]["branchy"]["correct"]
    run["accuracy_pairs"] = {"baseline_only": 90, "branchy_only": 48, "n": 10000}   # the same, compactly
    assert run_gains(run)["accuracy"] == p


def _with_trials(base_trials: list[np.ndarray], branchy_trials: list[np.ndarray]) -> dict:
    """A run whose variants' calls come in the given trials (what bench records: every call and, per trial,
    its statistics)."""
    from edgebranchy.measure.latency import ci95_across_trials, per_trial_table, summarize

    run = _run()
    for name, trials in (("baseline", base_trials), ("branchy", branchy_trials)):
        calls = np.concatenate(trials)
        s = summarize(calls)
        table = per_trial_table(trials)
        run["variants"][name]["latency_ms"] = {
            "per": "sample", "samples": calls.tolist(), **{k: s[k] for k in ("p50", "p90", "p99", "p999", "mean")},
            "ci95": list(ci95_across_trials(table["mean"])) if len(trials) > 1 else None, "trials": table}
    run["config"]["trials"] = len(base_trials)
    return run


def _shifted_trials(rng: np.random.Generator, center: float, shifts: list[float], calls: int = 4000) -> list:
    return [center * (1 + s) * rng.lognormal(0.0, 0.1, calls) for s in shifts]


def test_intervals_come_from_the_trials_not_the_calls() -> None:
    """Thousands of calls per trial, trials apart by a few per cent: the interval is the trials' (issue 22)."""
    rng = np.random.default_rng(3)
    base = _shifted_trials(rng, 0.14, [0.05, -0.06, 0.02, -0.03, 0.06])
    br = _shifted_trials(rng, 0.07, [-0.04, 0.05, 0.06, -0.05, 0.0])
    g = run_gains(_with_trials(base, br))
    d = np.log(np.array([np.median(b) for b in base]) / np.array([np.median(r) for r in br]))
    half = 2.776 * np.std(d, ddof=1) / math.sqrt(5)   # Student t, 4 degrees of freedom
    gain = np.median(np.concatenate(base)) / np.median(np.concatenate(br))
    assert g["p50"]["gain"] == pytest.approx(gain) and g["p50"]["trials"] == 5
    assert g["p50"]["ci95"] == pytest.approx([gain * math.exp(-half), gain * math.exp(half)])
    assert g["p50"]["ci95"][1] / g["p50"]["ci95"][0] > 1.08   # 20,000 calls do not make it narrow
    dm = np.log(np.array([b.mean() for b in base]) / np.array([r.mean() for r in br]))
    assert g["mean"]["ci95"][1] / g["mean"]["gain"] == pytest.approx(math.exp(2.776 * np.std(dm, ddof=1) / math.sqrt(5)))
    assert g["p99"]["ci95"][0] < g["p99"]["change"] < g["p99"]["ci95"][1]
    # the per-trial statistics are enough: the raw calls (the side file) are not needed
    run = _with_trials(base, br)
    for v in ("baseline", "branchy"):
        del run["variants"][v]["latency_ms"]["samples"]
    assert run_gains(run)["p50"]["ci95"] == g["p50"]["ci95"]


def test_one_or_two_trials_say_so() -> None:
    rng = np.random.default_rng(4)
    one = _with_trials(_shifted_trials(rng, 0.14, [0.0]), _shifted_trials(rng, 0.07, [0.0]))
    g = run_gains(one)
    assert g["p50"]["ci95"] is None and g["p50"]["note"] == "1 trial: no interval"
    lines = verdict_lines(one)
    assert "faster at p50 (1 trial: no interval) (mean" in lines[0]
    assert any(w.startswith("warning: 1 trial per variant: no interval can be given") for w in lines[1:])
    two = _with_trials(_shifted_trials(rng, 0.14, [0.03, -0.03]), _shifted_trials(rng, 0.07, [-0.03, 0.03]))
    lines = verdict_lines(two)
    assert " over 2 trials: wide] (mean" in lines[0]
    assert any("only 2 trials per variant: the intervals are wide" in w for w in lines[1:])
    lo, hi = run_gains(two)["p50"]["ci95"]
    assert hi / lo > 1.5   # t with 1 degree of freedom: wide, as it should be
    five = _with_trials(_shifted_trials(rng, 0.14, [0.0] * 5), _shifted_trials(rng, 0.07, [0.0] * 5))
    assert not any("trial" in w for w in verdict_lines(five)[1:])


def test_a_version_2_run_has_only_the_mean_interval() -> None:
    """Results versions 1 and 2 record no per-trial values: the quantile gains get no interval, the mean gain
    one from the recorded across-trial intervals of the two variants."""
    run = _run()
    for v in ("baseline", "branchy"):
        del run["variants"][v]["latency_ms"]["trials"]
    g = run_gains(run)
    assert g["p50"]["ci95"] is None and g["p99"]["ci95"] is None
    b, r = (run["variants"][v]["latency_ms"] for v in ("baseline", "branchy"))
    # each recorded interval read as a log-scale standard error (its wider side), t with trials - 1 = 4 df
    se = math.hypot(*(max(math.log(x["ci95"][1] / x["mean"]), math.log(x["mean"] / x["ci95"][0])) / 2.776
                      for x in (b, r)))
    assert g["mean"]["ci95"] == pytest.approx([g["mean"]["gain"] * math.exp(-2.776 * se),
                                               g["mean"]["gain"] * math.exp(2.776 * se)])


def test_expected_speedup_and_its_source() -> None:
    run = _run()
    exp = run_gains(run)["expected"]
    val = run["calibration"]["validation"]["relative_cost"]
    assert exp["source"] == "MACs" and exp["split"] == "validation" and exp["speedup"] == pytest.approx(1 / val)
    assert exp["at_run_exits"]["relative_cost"] == pytest.approx((0.22 + 0.06 * 1.03) / 1.14)
    run["calibration"]["cost_source"] = "latency measured by bench on x86-cpu (onnxruntime, batch 1): r.json"
    assert run_gains(run)["expected"]["source"] == "measured costs"
    assert run_gains(_run(calibration=False))["expected"] is None


def test_stored_gains_are_used() -> None:
    run = _run()
    run["gains"] = {"p50": {"gain": 9.0}, "trials": 5, "marker": True}
    assert gains_of(run)["marker"] is True
    run["gains"] = {"p50": {"gain": 9.0}, "marker": True}   # stored before intervals came from the trials
    assert "marker" not in gains_of(run) and gains_of(run)["p50"]["trials"] == 5


def test_change_between_runs_is_per_sample() -> None:
    a, b = _run(), _run(seed=0)
    c = change(a, b, "branchy p50 ms")
    assert c["change"] == 0.0 and c["ci95"][0] < 0 < c["ci95"][1]   # the same run again: within noise
    nano = second_run()
    c = change(a, nano, "branchy p50 ms")
    per_sample = nano["variants"]["branchy"]["latency_ms"]["p50"] / 8
    assert c["new"] == pytest.approx(per_sample)
    assert c["change"] == pytest.approx(per_sample / a["variants"]["branchy"]["latency_ms"]["p50"] - 1)


def test_verdict_line_of_a_winning_run() -> None:
    lines = verdict_lines(_run())
    assert lines[0] == ("branchy is 1.97x faster at p50 [1.93x, 2.02x over 5 trials] (mean 1.79x, p99 +21%), uses "
                        "1.87x less energy (estimated), accuracy -0.42 points [-1.26, +0.42] on 10,000 test samples")
    assert not any("does not pay" in w or "uncalibrated" in w for w in lines)
    assert all(w.startswith("warning: ") for w in lines[1:])


def test_a_run_that_loses_gets_every_warning_that_applies() -> None:
    lines = verdict_lines(_run(baseline_p50=0.07, branchy_p50=0.09, exit_counts=(0, 10000), calibration=False,
                               with_energy=False))
    text = "\n".join(lines)
    assert lines[0].startswith("branchy is SLOWER than the baseline at p50: 0.")
    assert "energy not recorded" in lines[0]
    assert "warning: early exit does not pay here: branchy is 0." in text
    assert "warning: the artifact is uncalibrated" in text
    assert "warning: no sample leaves early (exits 0.0% / 100.0%)" in text
    assert "warning: the tail is worse" in text
    assert "nan" not in text.lower()


def test_accuracy_below_the_calibrated_target() -> None:
    run = _run()
    run["variants"]["branchy"]["accuracy"] = 0.8800    # -1.93 points, the target allows -0.5
    text = "\n".join(verdict_lines(run))
    assert "warning: accuracy is below the calibrated target: -1.93 points [" in text
    assert "allowed drop of 0.5 points" in text
    assert "below the calibrated target" not in "\n".join(verdict_lines(_run()))   # -0.42 is within


def test_gain_far_from_the_mac_estimate_names_the_cause() -> None:
    run = _run()
    run["calibration"]["head_costs"] = [0.12, 0.0]
    text = "\n".join(verdict_lines(run))
    assert "warning: measured gain 1.79x (mean) is far from the 4.05x expected from MACs" in text
    assert "per-call floor" in text and "segment 0 alone takes 0.063 ms" in text
    assert "exit 0's head is 55% of segment 0's MACs" in text
    # close to the estimate: no warning
    run["calibration"]["segment_costs"], run["calibration"]["baseline_cost"] = [0.55, 0.6], 1.14
    assert "far from" not in "\n".join(verdict_lines(run))


def test_batch_runs_say_per_batch_and_measured_energy() -> None:
    line = verdict_lines(second_run())[0]
    assert "at p50 per batch of 8" in line and "less energy (measured)" in line


def test_printed_intervals_never_collapse_onto_their_point() -> None:
    """'2.13x [2.13x, 2.13x]' (issue 22): enough decimals that a point and an interval that differ read apart."""
    from edgebranchy.report.main_table import gain_cell
    from edgebranchy.report.verdict import decimals_for, with_interval

    cell = gain_cell({"gain": 2.1304, "ci95": [2.1262, 2.1341], "trials": 5, "note": None})
    assert cell.text == "2.130x [2.126x, 2.134x]"
    assert with_interval(0.1362, [0.1331, 0.1384], "pct", start=1) == ("+13.6%", " [+13.3%, +13.8%]")
    assert with_interval(0.1362, [0.1358, 0.1366], "pct", start=1) == ("+13.62%", " [+13.58%, +13.66%]")
    assert with_interval(-0.42, [-0.4201, -0.4199], "points") == ("-0.4200", " [-0.4201, -0.4199]")
    assert with_interval(2.0, [2.0, 2.0]) == ("2.00x", " [2.00x, 2.00x]")   # data that do not vary: no digits added
    assert decimals_for([1.0, 1.0000001], 2) == 6   # at most 6
