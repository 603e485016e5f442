"""Choose the K-1 entropy thresholds of a BranchyNet on a held-out split (pure numpy).

Two targets, exactly one per call:

* ``max_accuracy_drop=D``: the cheapest thresholds whose accuracy stays within
  D percentage points of a reference accuracy (ties: higher accuracy);
* ``budget=B``: the most accurate thresholds whose expected cost is at most
  B x the baseline network's cost (ties: lower cost).

Candidates for a threshold are "nobody exits" (0.0: entropy is never
negative) and, for every distinct finite entropy value e seen at that exit,
"exactly the samples with entropy <= e leave" under the strict rule of
`edgebranchy.exits.rule` (represented inside the search by nextafter(e, +inf)).
The thresholds returned (chosen and frontier) are canonical: midway between the
largest entropy that leaves at an exit and the smallest that reaches it and
stays (`rule.threshold_between`: a float32 value where one lies there; midway
to the entropy's ceiling, ln C or 1 normalised, when every sample reaching
the exit leaves; 0.0 when none does), so that a last-bit difference between
the entropies computed here and on a device moves no validation sample. With 2 or 3 exits the search
covers every tuple of candidates and is exact; the accuracy-vs-cost Pareto
frontier is exact too. With more than 3 exits the first K-3 thresholds are
enumerated exhaustively only when that is small, and otherwise found by
coordinate descent around an exact search of the last two: then neither the
choice nor the frontier is guaranteed optimal (``CalibrationResult.exact``).

The exact search over two thresholds takes time proportional to N^2 (about
1 s for N = 10,000 samples on one laptop-class core) and memory proportional
to N; it refuses more than 2^21 - 1 samples reaching the first searched exit.

Feasibility is judged with a 1e-9 slack (accuracy: absolute; cost: relative)
so that float rounding of the target never turns a boundary point infeasible.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.pair import pair_points
from edgebranchy.exits.points import SLACK, Points, Problem, above, cost_sum, line_points, make_problem
from edgebranchy.exits.rule import assign_exits, check_threshold, threshold_between
from edgebranchy.util.checks import is_int_at_least

METHOD_DROP = "max-accuracy-drop"
METHOD_BUDGET = "budget"

_EXHAUSTIVE_COMBOS = 4096        # K > 3: enumerate the outer thresholds up to this many tuples ...
_EXHAUSTIVE_WORK = 5e7           # ... and this many tuples x samples^2
_MAX_ROUNDS = 20


# ----------------------------------------------------------------------------- selection

@dataclass(frozen=True)
class _Target:
    method: str
    need: int          # accuracy mode: fewest correct answers allowed
    limit: float       # budget mode: largest total cost allowed (summed over samples)
    value: float = 0.0               # the drop in points, or the budget as a fraction
    reference_accuracy: float = 1.0  # what the drop is measured from
    reference: str = "final-exit"
    floor: float = 0.0               # accuracy mode: the lowest accuracy allowed

    def order(self, cost: np.ndarray, correct: np.ndarray) -> np.ndarray:
        """Indices from best to worst (infeasibility first, then the objective, then the tie-break)."""
        if self.method == METHOD_DROP:
            short = np.maximum(self.need - correct, 0)
            return np.lexsort((-correct, cost, short))
        over = np.maximum(cost - self.limit, 0.0)
        return np.lexsort((cost, -correct, over))


def _frontier(points: Points, reach_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the non-dominated points sorted by cost, with their cost sums and correct counts.

    Of several points with equal cost and accuracy the one with the smallest thresholds
    (compared first to last) is kept.
    """
    cost = cost_sum(points.counts, reach_cost)
    keys = [points.thresholds[:, j] for j in range(points.thresholds.shape[1] - 1, -1, -1)]
    order = np.lexsort(keys + [-points.correct, cost])
    ranked = points.correct[order]
    best_before = np.maximum.accumulate(ranked)
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = ranked[1:] > best_before[:-1]
    idx = order[keep]
    return idx, cost[idx], points.correct[idx]


def _canonical(prob: Problem, thresholds: Sequence[float]) -> list[float]:
    """The canonical thresholds that send every sample where `thresholds` sends it.

    Threshold k is midway between the largest entropy among the samples leaving at k and the
    smallest finite one among those reaching k and staying (`threshold_between`), or 0.0 when none
    leaves there, so that a tuple depends neither on how the search reached it nor on the last bit
    of an entropy.
    """
    exits = assign_exits(prob.entropy.T, thresholds)
    out = []
    for k in range(prob.k - 1):
        e = prob.entropy[k]
        leaving = e[exits == k]
        if not leaving.size:
            out.append(0.0)
            continue
        stays = e[exits > k]
        stays = stays[np.isfinite(stays)]
        out.append(threshold_between(float(leaving.max()), float(stays.min()) if stays.size else None,
                                     prob.ceiling))
    return out


def _thin(n_points: int, cost: np.ndarray, chosen: int, max_points: int) -> np.ndarray:
    """At most about `max_points` frontier positions spread evenly along cost, ends and `chosen` kept."""
    if n_points <= max_points:
        return np.arange(n_points)
    targets = np.linspace(cost[0], cost[-1], max(max_points - 3, 2))
    pos = np.clip(np.searchsorted(cost, targets), 1, n_points - 1)
    nearer_left = (targets - cost[pos - 1]) <= (cost[pos] - targets)
    pos = np.where(nearer_left, pos - 1, pos)
    return np.unique(np.r_[pos, 0, n_points - 1, chosen])


def _search(prob: Problem, target: _Target) -> tuple[Points, bool]:
    """All candidate points worth keeping, and whether they cover every candidate tuple."""
    k = prob.k
    if k == 2:
        return line_points(prob, 0, [0.0]), True
    if k == 3:
        return pair_points(prob, []), True
    cands = [np.r_[0.0, above(np.unique(e[np.isfinite(e)]))] for e in prob.entropy[: k - 3]]
    combos = math.prod(c.size for c in cands)
    if combos <= _EXHAUSTIVE_COMBOS and combos * float(prob.n) ** 2 <= _EXHAUSTIVE_WORK:
        return Points.concat([pair_points(prob, outer) for outer in itertools.product(*cands)]), True
    return _coordinate_descent(prob, target), False


def _coordinate_descent(prob: Problem, target: _Target) -> Points:
    """Improve one outer threshold at a time (exactly), then the last two jointly, until stable."""
    k = prob.k
    thr = [0.0] * (k - 1)
    pool: list[Points] = []
    best_key: tuple[float, float, float] | None = None

    def adopt(points: Points) -> tuple[float, float, float]:
        pool.append(points)
        cost = cost_sum(points.counts, prob.reach_cost)
        j = int(target.order(cost, points.correct)[0])
        thr[:] = points.thresholds[j].tolist()
        corr = float(points.correct[j])
        if target.method == METHOD_DROP:
            return (max(target.need - corr, 0.0), float(cost[j]), -corr)
        return (max(float(cost[j]) - target.limit, 0.0), -corr, float(cost[j]))

    for _ in range(_MAX_ROUNDS):
        for i in range(k - 3):
            adopt(line_points(prob, i, thr))
        key = adopt(pair_points(prob, thr[: k - 3]))
        if best_key is not None and key >= best_key:
            break
        best_key = key
    return Points.concat(pool)


# ----------------------------------------------------------------------------- results

@dataclass
class CalibrationResult:
    """Chosen thresholds and what they give on the calibration split."""

    thresholds: list[float]
    exit_fractions: list[float]
    accuracy: float
    cost: float
    relative_cost: float
    n: int
    method: str
    target: float
    reference_accuracy: float
    frontier: list[dict[str, Any]]
    reference: str = "final-exit"
    segment_costs: list[float] = field(default_factory=list)
    baseline_cost: float = 1.0
    temperatures: list[float] | None = None
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The calibration record of docs/contracts.md; the caller fills cost_source and test."""
        return {
            "method": self.method,
            "target": self.target,
            "reference": self.reference,
            "reference_accuracy": self.reference_accuracy,
            "cost_source": None,
            "segment_costs": list(self.segment_costs),
            "baseline_cost": self.baseline_cost,
            "thresholds": list(self.thresholds),
            "temperatures": None if self.temperatures is None else list(self.temperatures),
            "validation": {"accuracy": self.accuracy, "cost": self.cost,
                           "relative_cost": self.relative_cost,
                           "exit_fractions": list(self.exit_fractions), "n": self.n},
            "test": None,
            "frontier": [dict(p, thresholds=list(p["thresholds"])) for p in self.frontier],
        }


def _evaluate(prob: Problem, thresholds: Sequence[float]) -> dict[str, Any]:
    exits = assign_exits(prob.entropy.T, thresholds)
    counts = np.bincount(exits, minlength=prob.k)
    correct = int(prob.correct[exits, np.arange(prob.n)].sum())
    cost = float(cost_sum(counts, prob.reach_cost)) / prob.n
    return {"accuracy": correct / prob.n, "cost": cost, "relative_cost": cost / prob.baseline_cost,
            "exit_fractions": (counts / prob.n).tolist(), "n": prob.n, "correct": correct}


def evaluate(logits: Sequence[np.ndarray], labels: np.ndarray, thresholds: Sequence[float],
             segment_costs: Sequence[float], baseline_cost: float, normalize: bool = False,
             temperatures: Sequence[float] | None = None,
             entropies: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Accuracy, expected cost, relative cost, exit fractions and n of `thresholds` on one split.

    `entropies` (one array per exit) replaces the entropies computed from `logits`.
    """
    prob = make_problem(logits, labels, segment_costs, baseline_cost, normalize, temperatures, entropies)
    thr = list(thresholds)
    if len(thr) != prob.k - 1:
        raise EdgeBranchyError(f"{prob.k} exits need {prob.k - 1} thresholds, got {len(thr)}")
    out = _evaluate(prob, [check_threshold(t, j) for j, t in enumerate(thr)])
    del out["correct"]
    return out


def _number(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EdgeBranchyError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise EdgeBranchyError(f"{name} must be finite, got {value!r}")
    return v


def calibrate(logits: Sequence[np.ndarray], labels: np.ndarray, segment_costs: Sequence[float],
              baseline_cost: float, *, max_accuracy_drop: float | None = None,
              budget: float | None = None, reference_accuracy: float | None = None,
              normalize: bool = False, temperatures: Sequence[float] | None = None,
              max_frontier_points: int = 200,
              entropies: Sequence[np.ndarray] | None = None) -> CalibrationResult:
    """Thresholds for K exits from every exit's logits on a validation split.

    `logits` holds K arrays [N, C]; reaching exit k costs sum(segment_costs[:k+1]).
    Give exactly one target: `max_accuracy_drop` (percentage points below
    `reference_accuracy`, a fraction in [0, 1] defaulting to the last exit's
    accuracy on this split) or `budget` (a fraction of `baseline_cost`).
    `entropies` (one [N] array per exit) replaces the entropies computed from the
    logits: a deployed graph's own outputs, so that what is calibrated is what runs.
    Raises EdgeBranchyError when no thresholds meet the target, naming the best achievable value.
    """
    if (max_accuracy_drop is None) == (budget is None):
        raise EdgeBranchyError("give exactly one of max_accuracy_drop and budget")
    if not is_int_at_least(max_frontier_points, 3):
        raise EdgeBranchyError(f"max_frontier_points must be an integer >= 3, got {max_frontier_points!r}")
    prob = make_problem(logits, labels, segment_costs, baseline_cost, normalize, temperatures, entropies)
    n = prob.n
    target = _make_target(prob, max_accuracy_drop, budget, reference_accuracy)
    points, exact = _search(prob, target)
    idx, cost, correct = _frontier(points, prob.reach_cost)
    chosen = _feasible(target, prob, cost, correct)
    thresholds = _canonical(prob, points.thresholds[idx[chosen]].tolist())
    ev = _evaluate(prob, thresholds)
    if ev["correct"] != int(correct[chosen]) or ev["cost"] != float(cost[chosen]) / n:
        # the search and the exit rule must agree exactly
        raise RuntimeError("calibration search disagrees with the exit rule; please report this")

    keep = _thin(idx.size, cost, chosen, max_frontier_points)
    frontier = [{"thresholds": _canonical(prob, points.thresholds[idx[j]].tolist()),
                 "accuracy": float(correct[j]) / n,
                 "relative_cost": float(cost[j]) / n / prob.baseline_cost} for j in keep]
    return CalibrationResult(
        thresholds=thresholds, exit_fractions=ev["exit_fractions"], accuracy=ev["accuracy"],
        cost=ev["cost"], relative_cost=ev["relative_cost"], n=n, method=target.method,
        target=target.value, reference_accuracy=target.reference_accuracy, frontier=frontier,
        reference=target.reference, segment_costs=prob.segment_costs.tolist(),
        baseline_cost=prob.baseline_cost,
        temperatures=None if temperatures is None else [float(t) for t in temperatures],
        exact=exact)


def _make_target(prob: Problem, max_accuracy_drop: float | None, budget: float | None,
                 reference_accuracy: float | None) -> _Target:
    """The target in the search's units: fewest correct answers allowed, or the largest total cost."""
    n = prob.n
    if reference_accuracy is None:
        ref, ref_name = float(prob.correct[-1].mean()), "final-exit"
    else:
        ref, ref_name = _number(reference_accuracy, "reference_accuracy"), "baseline"
        if not 0.0 <= ref <= 1.0:
            raise EdgeBranchyError(f"reference_accuracy is a fraction in [0, 1], got {ref}")
    if max_accuracy_drop is not None:
        drop = _number(max_accuracy_drop, "max_accuracy_drop")
        if drop < 0:
            raise EdgeBranchyError(f"max_accuracy_drop must be >= 0 percentage points, got {drop}")
        floor = ref - drop / 100.0
        return _Target(METHOD_DROP, max(0, math.ceil(n * (floor - SLACK))), math.inf, drop, ref, ref_name, floor)
    frac = _number(budget, "budget")
    if frac <= 0:
        raise EdgeBranchyError(f"budget must be a fraction of the baseline cost > 0, got {frac}")
    return _Target(METHOD_BUDGET, 0, frac * prob.baseline_cost * n * (1.0 + SLACK), frac, ref, ref_name)


def _feasible(target: _Target, prob: Problem, cost: np.ndarray, correct: np.ndarray) -> int:
    """The frontier position the target chooses: the cheapest within the accuracy floor, or the most accurate
    within the budget; EdgeBranchyError naming the best achievable value when none qualifies."""
    n = prob.n
    if target.method == METHOD_DROP:
        ok = np.nonzero(correct >= target.need)[0]
        if ok.size == 0:
            raise EdgeBranchyError(
                f"no thresholds keep accuracy within {target.value:g} points of {100 * target.reference_accuracy:.2f}% "
                f"(at least {100 * target.floor:.2f}%): the best achievable on this split is "
                f"{100 * correct[-1] / n:.2f}%")
        return int(ok[0])
    ok = np.nonzero(cost <= target.limit)[0]
    if ok.size == 0:
        raise EdgeBranchyError(
            f"no thresholds meet the budget of {100 * target.value:.2f}% of the baseline cost: "
            f"the cheapest achievable is {100 * cost[0] / n / prob.baseline_cost:.2f}%")
    return int(ok[-1])
