"""Warm up until latency is stable, by a stated criterion, instead of a fixed number of calls.

Criterion (`is_stable`): with W = `window`, after at least 3W calls, the median
of the last W latencies differs from the median of the W before them by less
than `rel_tol` (relative), and the coefficient of variation (std / mean) of the
medians of the last three windows is below `max_cv`. Warm-up stops at the first
call where that holds, or after `max_calls` (then it is reported as not stable,
never silently). The bench cycles over the same W batches, so every window
holds the same samples: an early-exit network's per-call latency is bimodal
(samples leave at different exits) and only its window medians can settle.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError


@dataclass(frozen=True)
class WarmupCriterion:
    window: int = 20
    rel_tol: float = 0.05
    max_cv: float = 0.05
    min_calls: int = 0
    max_calls: int = 2000

    def __post_init__(self) -> None:
        if self.window < 2:
            raise EdgeBranchyError(f"warm-up window must be at least 2 calls, got {self.window}")
        if not (self.rel_tol > 0 and self.max_cv > 0):
            raise EdgeBranchyError("warm-up tolerances must be > 0")
        if self.max_calls < 3 * self.window:
            raise EdgeBranchyError(f"warm-up max_calls ({self.max_calls}) must be at least 3 x window "
                                   f"({3 * self.window})")

    def describe(self) -> str:
        return (f"median of the last {self.window} calls within {self.rel_tol * 100:g}% of the previous "
                f"{self.window}, CV of the last three window medians below {self.max_cv:g} "
                f"(at most {self.max_calls} calls)")


def is_stable(latencies: Sequence[float], c: WarmupCriterion) -> bool:
    """Whether the latency series meets the criterion at its end (pure function)."""
    w = c.window
    if len(latencies) < max(3 * w, c.min_calls):
        return False
    meds = _window_medians(latencies, w)
    m_prev, m_last = meds[1], meds[2]
    if m_prev <= 0:
        return False
    return abs(m_last - m_prev) / m_prev < c.rel_tol and _cv(meds) < c.max_cv


def _window_medians(latencies: Sequence[float], w: int) -> list[float]:
    x = np.asarray(latencies[-3 * w:], dtype=float)
    return [float(np.median(x[i * w:(i + 1) * w])) for i in range(3)]


def _cv(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    return float(v.std(ddof=1)) / mean if mean > 0 else float("inf")


@dataclass
class WarmupResult:
    calls: int
    stable: bool
    median_ms: float
    cv: float | None
    criterion: str

    def to_dict(self) -> dict:
        return asdict(self)


def warm_up(call: Callable[[], None], c: WarmupCriterion, clock: Callable[[], int] = time.perf_counter_ns) -> WarmupResult:
    """Call `call()` until `is_stable` holds on its latencies or `max_calls` is reached."""
    lat: list[float] = []
    while len(lat) < c.max_calls:
        t0 = clock()
        call()
        lat.append((clock() - t0) / 1e6)
        if is_stable(lat, c):
            break
    enough = len(lat) >= 3 * c.window
    return WarmupResult(len(lat), is_stable(lat, c), float(np.median(lat[-c.window:])),
                        _cv(_window_medians(lat, c.window)) if enough else None, c.describe())


def warm_up_variants(runner, batches: Sequence[np.ndarray], c: WarmupCriterion,
                     sync: Callable[[], None]) -> dict[str, dict]:
    """Warm up the baseline, then the branchy network, each until its batch latency is stable."""
    out = {}
    for name in ("baseline", "branchy"):
        step = [0]
        fixed = batches[: c.window]  # the same samples in every window

        def call(name: str = name) -> None:
            xb = fixed[step[0] % len(fixed)]
            step[0] += 1
            runner.baseline(xb) if name == "baseline" else runner.predict(xb)
            sync()

        out[name] = warm_up(call, c).to_dict()
    return out
