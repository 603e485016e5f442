"""Intervals from the trials of a bench run: the trials are the replicates, the calls within a trial are not.

Bench interleaves its trials (baseline trial 0, branchy trial 0, baseline trial 1, ...); the machine's state
(other processes, clocks, caches) shifts whole trials, so thousands of calls in one trial are not thousands of
independent samples. Every interval here is a Student t interval over per-trial values, on the logarithm
(latencies, energies and their ratios are positive and their noise is multiplicative), with n - 1 degrees of
freedom for n trials: 2 trials give a very wide interval, 1 trial none.

- one run, one variant: the per-trial values of a statistic (p50, p99, mean of the calls of each trial);
- one run, branchy against its baseline: the per-round log ratios log(baseline_t / branchy_t), trial t of both
  variants paired (they ran next to each other);
- two runs: Welch's t on the two runs' per-trial (log) values, so a run with more trials weighs more and
  neither side's noise is assumed to be the other's.

Intervals are centred on the figure they qualify (the statistic over all calls, or the ratio of two), and
reported with the number of trials behind them. numpy only.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: two-sided 95% Student t critical values, by degrees of freedom
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060,
    26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 50: 2.009, 60: 2.000,
    80: 1.990, 100: 1.984, 120: 1.980,
}

#: the statistics bench records per trial (`latency_ms.trials`; "trimmed" since it exists, else computed here
#: from the raw calls where a run has them)
TRIAL_STATS = ("p50", "p90", "p99", "p999", "mean", "trimmed")

#: the share of calls the trimmed mean drops at each end
TRIM = 0.10

#: fewer trials than this: the interval is called wide (and absent below 2)
FEW_TRIALS = 3


def t95(df: float) -> float:
    """Two-sided 95% Student t critical value for `df` degrees of freedom (rounded down to the table's
    entry below: wider, never narrower; 1.96 beyond 120). `df` must be >= 1."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df > 120:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def trimmed_mean(x: Any, cut: float = TRIM) -> float:
    """The mean of the calls left after dropping the fastest and the slowest `cut` of them (floor(n * cut) at
    each end). Unlike the p50 it moves smoothly when a bimodal early-exit distribution shifts near its middle,
    and unlike the mean it ignores the stalls of a loaded machine."""
    v = np.sort(np.asarray(x, dtype=float))
    k = int(v.size * cut)
    return float(v[k:v.size - k].mean())


def per_trial(latency: dict, stat: str) -> np.ndarray | None:
    """The per-trial values of a latency statistic (`latency_ms.trials[stat]`, results version 3), or None. A
    file written before bench recorded the trimmed mean gets it from its raw calls (`samples`, split by
    `trials.calls`) where the run has them."""
    table = latency.get("trials") or {}
    values = table.get(stat)
    if not values and stat == "trimmed":
        values = _trimmed_from_calls(latency.get("samples"), table.get("calls"))
    if not values:
        return None
    return np.asarray(values, dtype=float)


def latency_value(latency: dict, stat: str) -> float | None:
    """A latency statistic over all calls (`latency_ms[stat]`); the trimmed mean from the raw calls for a file
    written before bench recorded it; None when neither is there."""
    if stat in latency:
        return float(latency[stat])
    samples = latency.get("samples")
    if stat != "trimmed" or not isinstance(samples, list) or not samples:
        return None
    return trimmed_mean(samples)


def _trimmed_from_calls(samples, calls) -> list[float] | None:
    if not isinstance(samples, list) or not calls or sum(calls) != len(samples):
        return None
    edges = np.cumsum([0, *calls])
    return [trimmed_mean(samples[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def logs(values: Any) -> np.ndarray | None:
    """log of positive per-trial values (None when there are none, or one is not positive)."""
    if values is None:
        return None
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.all(v > 0) or not np.all(np.isfinite(v)):
        return None
    return np.log(v)


def paired_log_ratios(num: Any, den: Any) -> np.ndarray | None:
    """log(num_t / den_t) for the trials both have (paired by position: trial t of each)."""
    a, b = logs(num), logs(den)
    if a is None or b is None:
        return None
    n = min(a.size, b.size)
    return a[:n] - b[:n] if n else None


def half_width(log_values: np.ndarray | None) -> float | None:
    """The 95% half-width, on the log scale, of the mean of per-trial log values (None below 2 trials)."""
    if log_values is None or log_values.size < 2:
        return None
    n = log_values.size
    return t95(n - 1) * float(np.std(log_values, ddof=1)) / math.sqrt(n)


def around(point: float, half: float | None) -> list[float] | None:
    """[point / e^half, point * e^half]: the interval of a positive figure from a log-scale half-width."""
    if half is None or not point > 0:
        return None
    return [point * math.exp(-half), point * math.exp(half)]


def welch_half(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """95% half-width of mean(b) - mean(a) by Welch's t (each side needs 2 trials; None otherwise)."""
    if a is None or b is None or a.size < 2 or b.size < 2:
        return None
    va, vb = float(np.var(a, ddof=1)) / a.size, float(np.var(b, ddof=1)) / b.size
    se2 = va + vb
    if se2 == 0:
        return 0.0
    df = se2 * se2 / (va * va / (a.size - 1) + vb * vb / (b.size - 1))
    return t95(max(1.0, df)) * math.sqrt(se2)


def recorded_log_se(value: float, ci: Sequence[float] | None, trials: int) -> float | None:
    """The standard error on the log scale implied by a recorded 95% interval of `value` over `trials`
    trials (results versions 1 and 2 record the interval, not the trials' values)."""
    if not ci or len(ci) != 2 or trials < 2 or not value > 0:
        return None
    lo, hi = float(ci[0]), float(ci[1])
    sides = [math.log(hi / value)] if hi > 0 else []
    if lo > 0:
        sides.append(math.log(value / lo))
    if not sides:
        return None
    return max(max(sides), 0.0) / t95(trials - 1)


def combined_half(se_a: float | None, se_b: float | None, trials: int) -> float | None:
    """95% half-width of a difference of two independent log estimates with standard errors se_a, se_b."""
    if se_a is None or se_b is None or trials < 2:
        return None
    return t95(trials - 1) * math.sqrt(se_a * se_a + se_b * se_b)


def trials_note(n: int | None) -> str | None:
    """What a person must know about an interval from n trials: none (1 trial) or wide (2); None when fine."""
    if n is None:
        return None
    if n < 2:
        return f"{n} trial: no interval"
    if n < FEW_TRIALS:
        return f"only {n} trials: the interval is wide"
    return None
