"""Latency timing and statistics: percentiles of samples, 95% intervals across trials."""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

from edgebranchy.errors import EdgeBranchyError

def now_ns() -> int:
    """Monotonic time in nanoseconds (perf_counter_ns)."""
    return time.perf_counter_ns()


class Timer:
    """Times a region; calls `sync` (e.g. a GPU synchronise) before reading the clock at both ends.

    >>> with Timer() as t: work()
    >>> t.elapsed_ms
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.start_ns: int | None = None
        self.end_ns: int | None = None

    def start(self) -> "Timer":
        if self.sync is not None:
            self.sync()
        self.start_ns, self.end_ns = now_ns(), None
        return self

    def stop(self) -> float:
        """End the region and return its length in milliseconds."""
        if self.start_ns is None:
            raise EdgeBranchyError("Timer.stop() called before start()")
        if self.sync is not None:
            self.sync()
        self.end_ns = now_ns()
        return self.elapsed_ms

    @property
    def elapsed_ms(self) -> float:
        if self.start_ns is None or self.end_ns is None:
            raise EdgeBranchyError("Timer has not measured a region yet")
        return (self.end_ns - self.start_ns) / 1e6

    def __enter__(self) -> "Timer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _finite(values: Iterable[float], what: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as e:
        raise EdgeBranchyError(f"{what} must be numbers: {e}") from None
    if not out:
        raise EdgeBranchyError(f"{what}: no values")
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise EdgeBranchyError(f"{what} contain {len(bad)} non-finite value(s) (e.g. {bad[0]})")
    return out


def summarize(samples_ms: Sequence[float]) -> dict:
    """Percentiles (p50, p90, p99, p999; linear), mean, trimmed mean (`trimmed_mean`), std (n-1), n, min, max of
    latency samples."""
    import numpy as np

    from edgebranchy.artifact.replicates import trimmed_mean

    x = np.asarray(_finite(samples_ms, "latency samples"), dtype=float)
    p50, p90, p99, p999 = np.percentile(x, [50, 90, 99, 99.9])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "p999": float(p999),
        "mean": float(x.mean()),
        "trimmed": trimmed_mean(x),   # what compare gates on, with the mean
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "n": int(x.size),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def t95(df: int) -> float:
    """Two-sided 95% Student t critical value (table up to df 120, rounded down to the nearest entry; 1.96 beyond)."""
    from edgebranchy.artifact.replicates import t95 as _t95

    if df < 1:
        raise EdgeBranchyError(f"degrees of freedom must be >= 1, got {df}")
    return _t95(df)


def ci95_across_trials(trial_values: Sequence[float]) -> tuple[float, float]:
    """95% confidence interval of the mean of per-trial values (Student t); one trial gives (v, v)."""
    v = _finite(trial_values, "trial values")
    n = len(v)
    mean = sum(v) / n
    if n == 1:
        return (mean, mean)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def median_ci95(values: Sequence[float], trials: Sequence[int] | None = None) -> dict:
    """{"median", "ci95": [lo, hi] | None, "mean", "n", "values", "trials"}: the median of per-trial values with
    a 95% Student t interval over the trials, centred on the median (on the log scale when every value is
    positive, else on the values); None below 2 trials. `values` and `trials` (their trial indices, default
    0..n-1) are kept, so a ratio of two variants can pair its trials."""
    import numpy as np

    from edgebranchy.artifact.replicates import around, half_width, logs

    v = np.asarray(_finite(values, "trial values"), dtype=np.float64)
    med = float(np.median(v))
    lv = logs(v) if med > 0 else None
    if lv is not None:
        ci = around(med, half_width(lv))
    elif len(v) > 1:
        half = t95(len(v) - 1) * float(np.std(v, ddof=1)) / math.sqrt(len(v))
        ci = [med - half, med + half]
    else:
        ci = None
    return {"median": med, "ci95": ci, "mean": float(v.mean()), "n": int(len(v)), "values": v.tolist(),
            "trials": list(range(len(v))) if trials is None else [int(t) for t in trials]}


def per_trial_table(trials: Sequence[Sequence[float]]) -> dict:
    """{"calls": [...], "p50": [...], "p90", "p99", "p999", "mean", "trimmed"}: each statistic of each trial's
    calls (ms), in trial order: what the results file keeps so intervals come from trial-level variation."""
    out: dict = {"calls": [len(t) for t in trials]}
    stats = [summarize(t) for t in trials]
    for key in ("p50", "p90", "p99", "p999", "mean", "trimmed"):
        out[key] = [s[key] for s in stats]
    return out
