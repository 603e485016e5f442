"""Latency timing and statistics: percentiles of samples, 95% intervals across trials."""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

from edgebranchy.errors import EdgeBranchyError

#: two-sided 95% Student t critical values, by degrees of freedom
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060,
    26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 50: 2.009, 60: 2.000,
    80: 1.990, 100: 1.984, 120: 1.980,
}


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
    """Percentiles (p50, p90, p99, p999; linear), mean, std (n-1), n, min, max of latency samples."""
    import numpy as np

    x = np.asarray(_finite(samples_ms, "latency samples"), dtype=float)
    p50, p90, p99, p999 = np.percentile(x, [50, 90, 99, 99.9])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "p999": float(p999),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "n": int(x.size),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def t95(df: int) -> float:
    """Two-sided 95% Student t critical value (table up to df 120, rounded down to the nearest entry; 1.96 beyond)."""
    if df < 1:
        raise EdgeBranchyError(f"degrees of freedom must be >= 1, got {df}")
    if df > 120:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


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


def median_ci95(values: Sequence[float], resamples: int = 5000, seed: int = 0) -> dict:
    """{"median", "ci95": [lo, hi], "mean", "n"}: the median of per-trial values with a 95% percentile
    bootstrap interval of the median (fixed seed, so the same trials give the same interval)."""
    import numpy as np

    v = np.asarray(_finite(values, "trial values"), dtype=np.float64)
    med = float(np.median(v))
    if len(v) == 1:
        lo = hi = med
    else:
        rng = np.random.default_rng(seed)
        meds = np.median(v[rng.integers(0, len(v), size=(resamples, len(v)))], axis=1)
        lo, hi = (float(q) for q in np.percentile(meds, [2.5, 97.5]))
    return {"median": med, "ci95": [lo, hi], "mean": float(v.mean()), "n": int(len(v))}
