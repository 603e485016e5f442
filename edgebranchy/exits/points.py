"""The search's inputs and its candidate points (pure numpy): each exit's entropy and correctness on one split,
the cost of reaching each exit, the points (threshold tuples and their outcomes) one threshold's candidates give,
and a running Pareto filter over them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.entropy import check_temperature, entropy
from edgebranchy.exits.rule import assign_exits
from edgebranchy.exits.temperature import check_labels

#: feasibility slack (accuracy: absolute; cost: relative), so float rounding never makes a boundary point infeasible
SLACK = 1e-9


@dataclass(frozen=True)
class Problem:
    """Per-exit entropy and correctness on one split, and the cost of reaching each exit."""

    entropy: np.ndarray      # [K, N] float64, NaN where the logits were not finite
    correct: np.ndarray      # [K, N] bool
    segment_costs: np.ndarray  # [K] cost of running segment k
    reach_cost: np.ndarray   # [K] cost of a sample that leaves at exit k (prefix sum of segment costs)
    baseline_cost: float
    ceiling: float = 1.0     # the largest entropy there can be: ln C, or 1 normalised

    @property
    def k(self) -> int:
        return self.entropy.shape[0]

    @property
    def n(self) -> int:
        return self.entropy.shape[1]


def _check_costs(segment_costs: Sequence[float], k: int, baseline_cost: float) -> tuple[np.ndarray, float]:
    try:
        costs = np.asarray(list(segment_costs), dtype=np.float64)
    except (TypeError, ValueError):
        raise EdgeBranchyError(f"segment_costs must be numbers, got {segment_costs!r}") from None
    if costs.ndim != 1 or costs.shape[0] != k:
        raise EdgeBranchyError(f"{k} exits need {k} segment costs, got {costs.size}")
    if not np.all(np.isfinite(costs)):
        raise EdgeBranchyError(f"segment costs must be finite, got {costs.tolist()}")
    if np.any(costs < 0):
        raise EdgeBranchyError(f"segment costs must be >= 0, got {costs.tolist()}")
    try:
        base = float(baseline_cost)
    except (TypeError, ValueError):
        raise EdgeBranchyError(f"baseline_cost must be a number, got {baseline_cost!r}") from None
    if not math.isfinite(base) or base <= 0:
        raise EdgeBranchyError(f"baseline_cost must be finite and > 0, got {baseline_cost!r}")
    return costs, base


def make_problem(logits: Sequence[np.ndarray], labels: np.ndarray, segment_costs: Sequence[float],
             baseline_cost: float, normalize: bool, temperatures: Sequence[float] | None,
             entropies: Sequence[np.ndarray] | None = None) -> Problem:
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        raise EdgeBranchyError("logits must be a list with one [N, C] array per exit")
    per_exit = [np.asarray(x) for x in logits]
    k = len(per_exit)
    if k < 2:
        raise EdgeBranchyError(f"calibration needs at least 2 exits, got {k}")
    costs, base = _check_costs(segment_costs, k, baseline_cost)
    if temperatures is None:
        temps = [1.0] * k
    else:
        temps = list(temperatures)
        if len(temps) != k:
            raise EdgeBranchyError(f"{k} exits need {k} temperatures, got {len(temps)}")
        temps = [check_temperature(t) for t in temps]
    if entropies is not None and len(entropies) != k:
        raise EdgeBranchyError(f"{k} exits need {k} entropy arrays, got {len(entropies)}")
    ents = []
    for j, x in enumerate(per_exit):
        if x.ndim != 2:
            raise EdgeBranchyError(f"logits of exit {j} must be [samples, classes], got shape {x.shape}")
        if x.shape[0] != per_exit[0].shape[0]:
            raise EdgeBranchyError(
                f"exit {j} has logits for {x.shape[0]} samples but exit 0 has {per_exit[0].shape[0]}")
        if entropies is None:
            ents.append(entropy(x, normalize=normalize, temperature=temps[j]))
        else:  # what a deployed graph computed itself (device calibration): used as given
            ej = np.asarray(entropies[j], dtype=np.float64)
            if ej.shape != (x.shape[0],):
                raise EdgeBranchyError(f"exit {j}: {ej.shape} entropies for {x.shape[0]} samples")
            ents.append(np.where(np.all(np.isfinite(x), axis=1), ej, np.nan))
    n = per_exit[0].shape[0]
    if n == 0:
        raise EdgeBranchyError("calibration needs at least one sample")
    y = check_labels(labels, n, min(x.shape[1] for x in per_exit))
    correct = np.empty((k, n), dtype=bool)
    for j, x in enumerate(per_exit):
        xf = x.astype(np.float64, copy=False)
        finite = np.all(np.isfinite(xf), axis=1)
        correct[j] = finite & (np.argmax(xf, axis=1) == y)
    ceiling = 1.0 if normalize else math.log(min(x.shape[1] for x in per_exit))
    return Problem(np.stack(ents), correct, costs, np.cumsum(costs), base, ceiling)


# ----------------------------------------------------------------------------- candidate points

@dataclass
class Points:
    """Outcomes of threshold tuples: samples per exit, correct answers, the tuples themselves."""

    counts: np.ndarray       # [M, K] int64
    correct: np.ndarray      # [M] int64
    thresholds: np.ndarray   # [M, K-1] float64

    @staticmethod
    def concat(parts: list["Points"]) -> "Points":
        return Points(np.concatenate([p.counts for p in parts]),
                       np.concatenate([p.correct for p in parts]),
                       np.concatenate([p.thresholds for p in parts]))

    def take(self, mask: np.ndarray) -> "Points":
        return Points(self.counts[mask], self.correct[mask], self.thresholds[mask])


def cost_sum(counts: np.ndarray, reach_cost: np.ndarray) -> np.ndarray:
    """Total cost of the samples in `counts` ([..., K]); the same arithmetic everywhere."""
    total = np.zeros(counts.shape[:-1], dtype=np.float64)
    for k in range(counts.shape[-1]):
        total = total + counts[..., k] * reach_cost[k]
    return total


def above(values: np.ndarray) -> np.ndarray:
    return np.nextafter(values, np.inf)


def line_points(prob: Problem, i: int, thresholds: Sequence[float]) -> Points:
    """Every candidate for threshold i, the other thresholds held at `thresholds`."""
    k = prob.k
    base_thr = list(thresholds)
    base_thr[i] = 0.0
    fate = assign_exits(prob.entropy.T, base_thr)        # where each sample goes if nobody exits at i
    cols = np.arange(prob.n)
    fate_correct = prob.correct[fate, cols]
    base_counts = np.bincount(fate, minlength=k)
    base_correct = int(fate_correct.sum())

    e = prob.entropy[i]
    cand = np.nonzero((fate > i) & np.isfinite(e))[0]
    cand = cand[np.argsort(e[cand], kind="stable")]
    ev = e[cand]
    ends = np.nonzero(np.r_[ev[1:] != ev[:-1], True])[0] if ev.size else np.zeros(0, np.int64)
    m = ends.size

    counts = np.empty((m + 1, k), dtype=np.int64)
    counts[:] = base_counts
    moved = fate[cand]
    for j in range(i + 1, k):
        counts[1:, j] -= np.cumsum(moved == j)[ends]
    counts[1:, i] += ends + 1
    correct = np.full(m + 1, base_correct, dtype=np.int64)
    correct[1:] += np.cumsum(prob.correct[i, cand])[ends] - np.cumsum(fate_correct[cand])[ends]
    thr = np.tile(np.asarray(base_thr, dtype=np.float64), (m + 1, 1))
    thr[1:, i] = above(ev[ends])
    return Points(counts, correct, thr)


class Running:
    """A running Pareto filter: the least total cost seen so far for each number of correct answers or more."""

    def __init__(self, n: int, reach_cost: np.ndarray) -> None:
        self.reach_cost = reach_cost
        self.least = np.full(n + 1, np.inf)   # least[c]: least cost of any point with >= c correct
        self.parts: list[Points] = []

    def useful(self, correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Mask of the points that no point offered so far dominates or equals."""
        return cost < self.least[correct]

    def offer(self, points: Points) -> None:
        cost = cost_sum(points.counts, self.reach_cost)
        keep = self.useful(points.correct, cost)
        if not keep.any():
            return
        points = points.take(keep)
        least = self.least.copy()
        np.minimum.at(least, points.correct, cost[keep])
        self.least = np.minimum.accumulate(least[::-1])[::-1]
        self.parts.append(points)

    def points(self) -> Points:
        return Points.concat(self.parts)
