"""What a bench run says about early exit: baseline/branchy gains with 95% intervals, computed from one run.

A run is the body of a results document (environment, config, variants, calibration, ...). Its trials are the
replicates (`artifact.replicates`): bench interleaves baseline and branchy trials, and the machine's state
shifts whole trials, so an interval comes from the spread between trials, never from the number of calls:

- a latency gain or change (p50, mean, p99; the trimmed mean in `change`) from the per-round log ratios log(baseline_t / branchy_t) of the
  per-trial statistics that results version 3 records (`latency_ms.trials`), Student t with trials - 1 degrees
  of freedom, centred on the ratio of the statistics over all calls; a version-1/2 file records only the mean's
  across-trial interval, so its mean gain gets an interval from those and its quantile gains none;
- an energy gain from the per-trial energies paired by trial (`per_inference_mj.values` / `.trials`), else
  from the two recorded intervals;
- the accuracy difference in points: paired on the same samples when the run records per-sample
  correctness (`variants.X.correct`, 0/1 per sample) or its discordant counts (`accuracy_pairs`:
  {"baseline_only", "branchy_only", "n"}: samples only the baseline, only branchy got right), else two
  independent proportions.

Every entry says how many trials it rests on (`trials`) and, below 3, that its interval is wide or absent
(`note`). Pure Python and numpy: bench (to store the gains), the report, the verdict and `compare` use it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgebranchy.artifact.replicates import (around, combined_half, half_width, latency_value, logs,
                                             paired_log_ratios, per_trial, recorded_log_se, trials_note, welch_half)

Z95 = 1.959964


def _gains_schema() -> Any:
    """The declared schema of the `gains` a run stores (what `run_gains` returns)."""
    from edgebranchy.util.schema import Bool, Int, List, Nullable, Num, Obj, Str

    pair = List(Num(), 2, 2)
    common = {"baseline": Num(0), "branchy": Num(0), "trials": Int(0), "ci95": Nullable(pair)}
    ratio = Obj({**common, "gain": Nullable(Num(0))}, {"note": Nullable(Str())})
    energy = Obj({**common, "gain": Nullable(Num(0))}, {"note": Nullable(Str()), "kind": Nullable(Str())})
    speed = {"relative_cost": Num(0), "speedup": Num(0)}
    expected = Obj({"source": Str(), **speed}, {"cost_source": Nullable(Str()), "split": Str(), "at_run_exits": Obj(speed)})
    accuracy = Obj({"baseline": Num(0, 1), "branchy": Num(0, 1), "diff_points": Num(-100, 100),
                    "ci95_points": pair, "method": Str(), "n": Int(0)})
    return Obj({"samples": Int(1), "batch_size": Int(1), "trials": Int(0), "latency_per": Str(),
                "p50": ratio, "mean": ratio,
                "p99": Obj({**common, "change": Nullable(Num(-1))}, {"note": Nullable(Str())}),
                "energy": Nullable(energy), "dynamic_energy": Nullable(energy), "accuracy": accuracy,
                "exit_fractions": List(Num(0, 1), 1), "exit_counts": List(Int(0), 1), "early_fraction": Num(0, 1),
                "calibrated": Bool()}, {"expected": Nullable(expected)})


GAINS_SCHEMA = _gains_schema()


def check_stored(gains: dict, version: int, where: str) -> None:
    """Stored gains against GAINS_SCHEMA: from results version 3 on, and in version 2 where they have `trials`
    (earlier ones are computed again by `gains_of`, never read)."""
    from edgebranchy.util.schema import check

    if version >= 3 or "trials" in gains:
        check(gains, GAINS_SCHEMA, where, at="gains")


def per_sample_ms(run: dict, value: float) -> float:
    """A latency of this run per sample (a per-batch figure divided by the batch size)."""
    per = run["variants"]["baseline"]["latency_ms"].get("per", "sample")
    return value / run["config"]["batch_size"] if per == "batch" else value


def _trials(run: dict) -> int:
    return int(run["config"].get("trials") or 0)


def latency_ratio_logs(run: dict, stat: str) -> tuple[np.ndarray | None, float | None]:
    """Per-round log(baseline_t / branchy_t) of a latency statistic, or (None, a log-scale standard error from
    the recorded intervals: the mean of a version-1/2 file), or (None, None)."""
    bl, rl = run["variants"]["baseline"]["latency_ms"], run["variants"]["branchy"]["latency_ms"]
    d = paired_log_ratios(per_trial(bl, stat), per_trial(rl, stat))
    if d is not None or stat != "mean":
        return d, None
    n = _trials(run)
    se_b = recorded_log_se(float(bl["mean"]), bl.get("ci95"), n)
    se_r = recorded_log_se(float(rl["mean"]), rl.get("ci95"), n)
    return None, (None if se_b is None or se_r is None else math.hypot(se_b, se_r))


def _paired_energy(eb: dict, er: dict) -> np.ndarray | None:
    """log(baseline_t / branchy_t) of per-trial energies, trials paired by index (only trials both kept)."""
    if "values" not in eb or "values" not in er:
        return None
    b = dict(zip(eb.get("trials") or range(len(eb["values"])), eb["values"]))
    r = dict(zip(er.get("trials") or range(len(er["values"])), er["values"]))
    common = sorted(set(b) & set(r))
    return paired_log_ratios([b[t] for t in common], [r[t] for t in common]) if common else None


def energy_ratio_logs(eb: dict, er: dict, trials: int) -> tuple[np.ndarray | None, float | None]:
    """Per-trial log energy ratios (baseline / branchy), else a standard error from the recorded intervals."""
    d = _paired_energy(eb, er)
    if d is not None:
        return d, None
    se_b = recorded_log_se(float(eb["median"]), eb.get("ci95"), int(eb.get("n") or trials))
    se_r = recorded_log_se(float(er["median"]), er.get("ci95"), int(er.get("n") or trials))
    return None, (None if se_b is None or se_r is None else math.hypot(se_b, se_r))


def _half(d: np.ndarray | None, se: float | None, trials: int) -> tuple[float | None, int]:
    if d is not None:
        return half_width(d), int(d.size)
    if se is not None:
        return combined_half(se, 0.0, trials), trials
    return None, trials


def _ratio_entry(b: float, r: float, d: np.ndarray | None, se: float | None, trials: int, *, gain: bool) -> dict:
    """{"baseline", "branchy", "gain" (baseline/branchy) or "change" (branchy/baseline - 1), "ci95", "trials",
    "note"}."""
    half, n = _half(d, se, trials)
    out: dict[str, Any] = {"baseline": b, "branchy": r, "trials": n, "note": trials_note(n)}
    if gain:
        out["gain"] = b / r if r > 0 else None
        out["ci95"] = around(out["gain"], half) if out["gain"] else None
    else:
        ratio = r / b if b > 0 else None
        out["change"] = None if ratio is None else ratio - 1.0
        ci = around(ratio, half) if ratio else None
        out["ci95"] = None if ci is None else [ci[0] - 1.0, ci[1] - 1.0]
    return out


def accuracy_difference(run: dict) -> dict:
    """Branchy minus baseline accuracy in points with a 95% interval, paired where the run allows."""
    base, br = run["variants"]["baseline"], run["variants"]["branchy"]
    n = int(run["config"]["samples"])
    pb, pr = float(base["accuracy"]), float(br["accuracy"])
    diff = pr - pb
    cb, cr = base.get("correct"), br.get("correct")
    pairs = run.get("accuracy_pairs")
    if isinstance(cb, list) and isinstance(cr, list) and len(cb) == len(cr) and cb:
        pairs = discordant(cb, cr)
    if isinstance(pairs, dict) and pairs.get("n"):
        return paired_difference(pb, pr, pairs)
    var = (pb * (1 - pb) + pr * (1 - pr)) / n
    half = Z95 * math.sqrt(var)
    return {"baseline": pb, "branchy": pr, "diff_points": 100 * diff,
            "ci95_points": [100 * (diff - half), 100 * (diff + half)], "method": "two-proportion", "n": n}


def discordant(base_correct: Any, branchy_correct: Any) -> dict:
    """`{"baseline_only", "branchy_only", "n"}`: the samples only one variant answered right."""
    a, b = np.asarray(base_correct, dtype=bool), np.asarray(branchy_correct, dtype=bool)
    return {"baseline_only": int(np.sum(a & ~b)), "branchy_only": int(np.sum(b & ~a)), "n": int(a.size)}


def paired_difference(pb: float, pr: float, pairs: dict) -> dict:
    """Branchy minus baseline accuracy in points, 95% interval from the discordant counts of the same
    samples (`{"baseline_only", "branchy_only", "n"}`)."""
    m = int(pairs["n"])
    only_r, only_b = float(pairs["branchy_only"]), float(pairs["baseline_only"])
    diff = (only_r - only_b) / m
    half = Z95 * math.sqrt(max((only_r + only_b) / m - diff * diff, 0.0) / m)
    return {"baseline": pb, "branchy": pr, "diff_points": 100 * diff,
            "ci95_points": [100 * (diff - half), 100 * (diff + half)], "method": "paired", "n": m}


def energy_kind(run: dict) -> str | None:
    """'measured', 'estimated', 'mixed' (the two variants differ) or None (no energy)."""
    kinds = {(run["variants"][v].get("energy") or {}).get("kind") for v in ("baseline", "branchy")}
    if None in kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"


def cost_source_name(cost_source: str | None) -> str:
    """'MACs' or 'measured costs', from a calibration record's cost_source."""
    text = (cost_source or "flops").lower()
    return "MACs" if text.startswith("flops") or "mac" in text else "measured costs"


def expected_speedup(run: dict) -> dict | None:
    """The speedup the calibration expects (1 / relative cost), and its cost source; None without one."""
    cal = run.get("calibration")
    if not cal:
        return None
    out: dict[str, Any] = {"source": cost_source_name(cal.get("cost_source")), "cost_source": cal.get("cost_source")}
    for split in ("test", "validation"):
        ev = cal.get(split)
        if ev and ev.get("relative_cost"):
            out.update(split=split, relative_cost=float(ev["relative_cost"]), speedup=1.0 / float(ev["relative_cost"]))
            break
    else:
        return None
    # the same cost model at the exits this run took
    seg, base_cost = cal.get("segment_costs"), cal.get("baseline_cost")
    fr = run["variants"]["branchy"]["exit_fractions"]
    if seg and base_cost and len(seg) == len(fr) and sum(fr) > 0:
        rel = sum(f * sum(seg[: k + 1]) for k, f in enumerate(fr)) / float(base_cost)
        if rel > 0:
            out["at_run_exits"] = {"relative_cost": rel, "speedup": 1.0 / rel}
    return out


def run_gains(run: dict) -> dict:
    """Gains of one run: p50/mean latency gain, p99 change, energy gain, accuracy difference, exits, estimate.

    Gains are baseline / branchy (above 1: branchy is faster or uses less energy); the p99 change is
    branchy / baseline - 1 (above 0: the tail is worse). Intervals are 95%, from the trials (see the module
    docstring); `trials` says how many rounds each rests on.
    """
    base, br = run["variants"]["baseline"], run["variants"]["branchy"]
    bl, rl = base["latency_ms"], br["latency_ms"]
    trials = _trials(run)
    out: dict[str, Any] = {"samples": int(run["config"]["samples"]), "latency_per": bl.get("per", "sample"),
                           "batch_size": int(run["config"]["batch_size"]), "trials": trials}
    for stat in ("p50", "mean", "p99"):
        d, se = latency_ratio_logs(run, stat)
        # the p99 change is branchy / baseline: the same log ratios, the other way round
        out[stat] = _ratio_entry(float(bl[stat]), float(rl[stat]), d, se, trials, gain=stat != "p99")
    for key, name in (("per_inference_mj", "energy"), ("dynamic_per_inference_mj", "dynamic_energy")):
        eb, er = (base.get("energy") or {}).get(key), (br.get("energy") or {}).get(key)
        if eb and er:
            d, se = energy_ratio_logs(eb, er, trials)
            entry = _ratio_entry(float(eb["median"]), float(er["median"]), d, se, trials, gain=True)
            entry["kind"] = energy_kind(run)
            out[name] = entry
        else:
            out[name] = None
    out["accuracy"] = accuracy_difference(run)
    fr = [float(f) for f in br["exit_fractions"]]
    out["exit_fractions"] = fr
    out["exit_counts"] = [int(c) for c in br["exit_counts"]]
    out["early_fraction"] = float(sum(fr[:-1]))
    out["calibrated"] = bool(run.get("calibration"))
    out["expected"] = expected_speedup(run)
    return out


def gains_of(run: dict) -> dict:
    """The gains the run stores (bench writes them as `gains`), else computed now. Gains stored before the
    intervals came from the trials (no `trials` key) are computed again."""
    stored = run.get("gains")
    return stored if isinstance(stored, dict) and "p50" in stored and "trials" in stored else run_gains(run)


# ------------------------------------------------------------------ run against run

#: the metrics `change` compares between two runs: a gain (baseline / branchy in the same run: higher is
#: better), a latency per sample or an energy (lower is better), the branchy accuracy (points)
METRICS = ("gain p50", "gain mean", "gain trimmed", "gain p99", "energy gain", "branchy p50 ms", "branchy mean ms",
           "branchy p99 ms", "baseline p50 ms", "branchy energy mJ", "branchy accuracy %")


def metric_logs(run: dict, name: str) -> tuple[float | None, np.ndarray | None, float | None, int]:
    """(value, per-trial log values or None, else a log-scale standard error or None, trials) of a named metric
    (METRICS) in this run; latencies per sample, so runs at different batch sizes compare."""
    v, trials = run["variants"], _trials(run)
    if name.startswith("gain "):
        stat = name.split()[1]
        b, r = latency_value(v["baseline"]["latency_ms"], stat), latency_value(v["branchy"]["latency_ms"], stat)
        if b is None or r is None:   # the trimmed mean of a file without it or its raw calls
            return None, None, None, trials
        d, se = latency_ratio_logs(run, stat)
        return (b / r if r > 0 else None), d, se, trials
    if name in ("energy gain", "branchy energy mJ"):
        eb = (v["baseline"].get("energy") or {}).get("per_inference_mj")
        er = (v["branchy"].get("energy") or {}).get("per_inference_mj")
        if name == "branchy energy mJ":
            if not er:
                return None, None, None, trials
            return (float(er["median"]), logs(er.get("values")),
                    recorded_log_se(float(er["median"]), er.get("ci95"), int(er.get("n") or trials)), trials)
        if not (eb and er):
            return None, None, None, trials
        d, se = energy_ratio_logs(eb, er, trials)
        return float(eb["median"]) / float(er["median"]), d, se, trials
    if name.endswith(" ms"):
        variant, stat = name.split()[:2]
        lat = v[variant]["latency_ms"]
        se = (recorded_log_se(float(lat["mean"]), lat.get("ci95"), trials) if stat == "mean" else None)
        return per_sample_ms(run, float(lat[stat])), logs(per_trial(lat, stat)), se, trials
    if name == "branchy accuracy %":
        return 100 * float(v["branchy"]["accuracy"]), None, None, trials
    raise KeyError(name)


def change(old: dict, new: dict, name: str) -> dict:
    """{"old", "new", "change" (new/old - 1), "ci95", "diff" (new - old), "trials": [old, new], "note"} of a named
    metric between two runs. The interval is Welch's t over the two runs' per-trial values (log scale), or from
    their recorded intervals (results versions 1 and 2); None when a side has fewer than 2 trials."""
    vo, lo, so, no = metric_logs(old, name)
    vn, ln, sn, nn = metric_logs(new, name)
    out: dict[str, Any] = {"old": vo, "new": vn, "change": None, "ci95": None, "diff": None, "trials": [no, nn],
                           "note": None}
    if vo is None or vn is None:
        return out
    out["diff"] = vn - vo
    if not (vo > 0 and vn > 0):
        return out
    step = math.log(vn / vo)
    out["change"] = math.exp(step) - 1.0
    if name == "branchy accuracy %":
        return out
    if lo is not None and ln is not None:
        half = welch_half(lo, ln)
    elif so is not None and sn is not None and min(no, nn) >= 2:
        half = combined_half(so, sn, min(no, nn))
    else:
        half = None
    if half is not None:
        out["ci95"] = [math.exp(step - half) - 1.0, math.exp(step + half) - 1.0]
    else:
        few = min(no, nn)
        out["note"] = (f"no interval: {few} trial{'s' if few != 1 else ''} on one side" if few < 2 else
                       "no interval: this statistic's per-trial values are not recorded (results version 1 or 2)")
    return out
