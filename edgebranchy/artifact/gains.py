"""What a bench run says about early exit: baseline/branchy gains with 95% intervals, computed from one run.

A run is the body of a results document (environment, config, variants, calibration, ...). Every
interval is a percentile interval of Monte Carlo draws with a fixed seed, so the same run always
gives the same numbers:

- a latency quantile (p50, p99) drawn from its bootstrap distribution when the raw samples are in the
  run (the resampled q-quantile of n sorted values is the order statistic at n x Beta(k, n + 1 - k),
  k = ceil(q n), so no resampling of the samples is needed); no interval when they are not;
- a mean latency and an energy median drawn from the interval the run records for it (normal on the
  logarithm, so a draw is never negative), the across-trials intervals that bench computes;
- the accuracy difference in points: paired on the same samples when the run records per-sample
  correctness (`variants.X.correct`, 0/1 per sample) or its discordant counts (`accuracy_pairs`:
  {"baseline_only", "branchy_only", "n"}: samples only the baseline, only branchy got right), else two
  independent proportions.

Pure Python and numpy: bench (to store the gains), the report, the verdict and `compare` all use it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

DRAWS = 4000
SEED = 0
Z95 = 1.959964


def _rng(salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + salt)


def _interval(draws: np.ndarray | None) -> list[float] | None:
    if draws is None:
        return None
    d = draws[np.isfinite(draws)]
    if d.size < len(draws) * 0.99:
        return None
    lo, hi = np.percentile(d, [2.5, 97.5])
    return [float(lo), float(hi)]


def quantile_draws(samples: Any, q: float, rng: np.random.Generator, draws: int = DRAWS) -> np.ndarray | None:
    """Bootstrap draws of the q-quantile of `samples` (None for fewer than 2 samples)."""
    if samples is None:
        return None
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n < 2:
        return None
    k = min(n, max(1, math.ceil(q * n)))
    u = rng.beta(k, n + 1 - k, size=draws)
    return x[np.minimum((u * n).astype(np.int64), n - 1)]


def _normal_draws(value: float, ci: Any, rng: np.random.Generator, log: bool = False,
                  draws: int = DRAWS) -> np.ndarray | None:
    """Draws of a value whose 95% interval is `ci` (normal on the value, or on its log when `log`)."""
    if not ci or len(ci) != 2:
        return None
    lo, hi = float(ci[0]), float(ci[1])
    if log:
        if value <= 0 or hi <= 0:
            return None
        sides = [math.log(hi / value)] + ([math.log(value / lo)] if lo > 0 else [])   # a t interval can reach 0
        se = max(*sides, 0.0) / Z95
        return value * np.exp(rng.normal(0.0, se, size=draws))
    se = max(hi - value, value - lo, 0.0) / Z95
    return value + rng.normal(0.0, se, size=draws)


def latency_draws(latency: dict, stat: str, rng: np.random.Generator) -> np.ndarray | None:
    """Draws of a variant's latency statistic ("p50", "p99" or "mean"); None when the run cannot say."""
    samples = latency.get("samples")
    if stat == "mean":
        d = _normal_draws(latency["mean"], latency.get("ci95"), rng, log=True)
        if d is not None and np.ptp(d) > 0:
            return d
        if samples is not None and len(samples) > 1:
            x = np.asarray(samples, dtype=float)
            if x.mean() > 0:
                return x.mean() * np.exp(rng.normal(0.0, x.std(ddof=1) / math.sqrt(x.size) / x.mean(), size=DRAWS))
        return None
    q = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}[stat]
    return quantile_draws(samples, q, rng)


def energy_draws(energy: dict | None, key: str, rng: np.random.Generator) -> np.ndarray | None:
    est = (energy or {}).get(key)
    if not est:
        return None
    return _normal_draws(est["median"], est.get("ci95"), rng, log=True)


def per_sample_ms(run: dict, value: float) -> float:
    """A latency of this run per sample (a per-batch figure divided by the batch size)."""
    per = run["variants"]["baseline"]["latency_ms"].get("per", "sample")
    return value / run["config"]["batch_size"] if per == "batch" else value


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _ratio_entry(b: float, r: float, db: np.ndarray | None, dr: np.ndarray | None, *, gain: bool) -> dict:
    """{"baseline", "branchy", "gain" (baseline/branchy) or "change" (branchy/baseline - 1), "ci95"}."""
    out: dict[str, Any] = {"baseline": b, "branchy": r}
    with np.errstate(divide="ignore", invalid="ignore"):
        if gain:
            out["gain"] = _ratio(b, r)
            out["ci95"] = _interval(db / dr) if db is not None and dr is not None else None
        else:
            ch = _ratio(r, b)
            out["change"] = None if ch is None else ch - 1.0
            out["ci95"] = _interval(dr / db - 1.0) if db is not None and dr is not None else None
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
    branchy / baseline - 1 (above 0: the tail is worse). Intervals are 95% (see the module docstring).
    """
    base, br = run["variants"]["baseline"], run["variants"]["branchy"]
    bl, rl = base["latency_ms"], br["latency_ms"]
    out: dict[str, Any] = {"samples": int(run["config"]["samples"]), "latency_per": bl.get("per", "sample"),
                           "batch_size": int(run["config"]["batch_size"])}
    for i, stat in enumerate(("p50", "mean", "p99")):
        rng_b, rng_r = _rng(2 * i), _rng(2 * i + 1)
        out[stat] = _ratio_entry(float(bl[stat]), float(rl[stat]), latency_draws(bl, stat, rng_b),
                                 latency_draws(rl, stat, rng_r), gain=stat != "p99")
    for key, name in (("per_inference_mj", "energy"), ("dynamic_per_inference_mj", "dynamic_energy")):
        eb, er = base.get("energy") or {}, br.get("energy") or {}
        if eb.get(key) and er.get(key):
            entry = _ratio_entry(float(eb[key]["median"]), float(er[key]["median"]),
                                 energy_draws(eb, key, _rng(10)), energy_draws(er, key, _rng(11)), gain=True)
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
    """The gains the run stores (bench writes them as `gains`), else computed now."""
    stored = run.get("gains")
    return stored if isinstance(stored, dict) and "p50" in stored else run_gains(run)


# ------------------------------------------------------------------ run against run

#: the metrics `change` compares between two runs (latencies and energy: lower is better)
METRICS = ("branchy p50 ms", "branchy mean ms", "branchy p99 ms", "baseline p50 ms", "branchy energy mJ",
           "gain p50", "gain mean", "branchy accuracy %")


def metric_draws(run: dict, name: str, stream: int = 0) -> tuple[float | None, np.ndarray | None]:
    """The value of a named metric (METRICS) in this run, and draws of it (None: no interval); `stream`
    picks independent draws (two runs compared must not share them)."""
    v = run["variants"]
    salt = 1000 * (stream + 1) + METRICS.index(name) * 7
    if name.endswith(" ms"):
        variant, stat = name.split()[:2]
        lat = v[variant]["latency_ms"]
        d = latency_draws(lat, stat, _rng(salt))
        return float(lat[stat]), d
    if name == "branchy energy mJ":
        e = v["branchy"].get("energy") or {}
        if not e.get("per_inference_mj"):
            return None, None
        return float(e["per_inference_mj"]["median"]), energy_draws(e, "per_inference_mj", _rng(salt))
    if name.startswith("gain "):
        stat = name.split()[1]
        bl, rl = v["baseline"]["latency_ms"], v["branchy"]["latency_ms"]
        db, dr = latency_draws(bl, stat, _rng(salt)), latency_draws(rl, stat, _rng(salt + 1))
        value = _ratio(float(bl[stat]), float(rl[stat]))
        return value, (db / dr if db is not None and dr is not None else None)
    if name == "branchy accuracy %":
        return 100 * float(v["branchy"]["accuracy"]), None
    raise KeyError(name)


def change(old: dict, new: dict, name: str) -> dict:
    """{"old", "new", "change" (new/old - 1), "ci95", "diff" (new - old)} of a named metric between two runs.

    Latencies are compared per sample, so runs at different batch sizes stay comparable.
    """
    vo, do = metric_draws(old, name, 0)
    vn, dn = metric_draws(new, name, 1)
    if vo is None or vn is None:
        return {"old": vo, "new": vn, "change": None, "ci95": None, "diff": None}
    if name.endswith(" ms"):
        so, sn = per_sample_ms(old, 1.0), per_sample_ms(new, 1.0)
        vo, vn = vo * so, vn * sn
        do = do * so if do is not None else None
        dn = dn * sn if dn is not None else None
    out: dict[str, Any] = {"old": vo, "new": vn, "diff": vn - vo,
                           "change": vn / vo - 1.0 if vo > 0 else None, "ci95": None}
    if vo > 0 and (do is not None or dn is not None):
        a = do if do is not None else np.full(DRAWS, vo)
        b = dn if dn is not None else np.full(DRAWS, vn)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ci95"] = _interval(b / a - 1.0)
    return out
