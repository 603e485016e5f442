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
from edgebranchy.util.checks import is_int_at_least
from edgebranchy.exits.entropy import check_temperature, entropy
from edgebranchy.exits.rule import assign_exits, check_threshold, threshold_between
from edgebranchy.exits.temperature import check_labels

METHOD_DROP = "max-accuracy-drop"
METHOD_BUDGET = "budget"

_SLACK = 1e-9
_FIELD = 21                      # bits per count packed into one int64 cumulative sum
_FIELD_MASK = (1 << _FIELD) - 1
_CHUNK_ELEMENTS = 1 << 20        # cells of the [rows, samples] block processed at once
_EXHAUSTIVE_COMBOS = 4096        # K > 3: enumerate the outer thresholds up to this many tuples ...
_EXHAUSTIVE_WORK = 5e7           # ... and this many tuples x samples^2
_MAX_ROUNDS = 20


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class _Problem:
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


def _problem(logits: Sequence[np.ndarray], labels: np.ndarray, segment_costs: Sequence[float],
             baseline_cost: float, normalize: bool, temperatures: Sequence[float] | None,
             entropies: Sequence[np.ndarray] | None = None) -> _Problem:
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
    return _Problem(np.stack(ents), correct, costs, np.cumsum(costs), base, ceiling)


# ----------------------------------------------------------------------------- candidate points

@dataclass
class _Points:
    """Outcomes of threshold tuples: samples per exit, correct answers, the tuples themselves."""

    counts: np.ndarray       # [M, K] int64
    correct: np.ndarray      # [M] int64
    thresholds: np.ndarray   # [M, K-1] float64

    @staticmethod
    def concat(parts: list["_Points"]) -> "_Points":
        return _Points(np.concatenate([p.counts for p in parts]),
                       np.concatenate([p.correct for p in parts]),
                       np.concatenate([p.thresholds for p in parts]))

    def take(self, mask: np.ndarray) -> "_Points":
        return _Points(self.counts[mask], self.correct[mask], self.thresholds[mask])


def _cost_sum(counts: np.ndarray, reach_cost: np.ndarray) -> np.ndarray:
    """Total cost of the samples in `counts` ([..., K]); the same arithmetic everywhere."""
    total = np.zeros(counts.shape[:-1], dtype=np.float64)
    for k in range(counts.shape[-1]):
        total = total + counts[..., k] * reach_cost[k]
    return total


def _above(values: np.ndarray) -> np.ndarray:
    return np.nextafter(values, np.inf)


def _line(prob: _Problem, i: int, thresholds: Sequence[float]) -> _Points:
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
    thr[1:, i] = _above(ev[ends])
    return _Points(counts, correct, thr)


class _Running:
    """A running Pareto filter: the least total cost seen so far for each number of correct answers or more."""

    def __init__(self, n: int, reach_cost: np.ndarray) -> None:
        self.reach_cost = reach_cost
        self.least = np.full(n + 1, np.inf)   # least[c]: least cost of any point with >= c correct
        self.parts: list[_Points] = []

    def useful(self, correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Mask of the points that no point offered so far dominates or equals."""
        return cost < self.least[correct]

    def offer(self, points: _Points) -> None:
        cost = _cost_sum(points.counts, self.reach_cost)
        keep = self.useful(points.correct, cost)
        if not keep.any():
            return
        points = points.take(keep)
        least = self.least.copy()
        np.minimum.at(least, points.correct, cost[keep])
        self.least = np.minimum.accumulate(least[::-1])[::-1]
        self.parts.append(points)

    def points(self) -> _Points:
        return _Points.concat(self.parts)


def _pair(prob: _Problem, outer: Sequence[float]) -> _Points:
    """The Pareto frontier over every candidate pair for the last two thresholds, the first K-3 held at `outer`.

    Rows are the candidates for T_a (exit K-3), columns those for T_b (exit
    K-2). For each row one packed cumulative sum over the samples ranked by
    exit-b entropy (highest first) gives, for every column, how many stay to
    the last exit and (correct at last - correct at b) among them. Within a row
    cost rises with the number that stay, so only columns that beat every
    cheaper column of their row, and no point found earlier, are kept.
    """
    k = prob.k
    a, b, c = k - 3, k - 2, k - 1
    running = _Running(prob.n, prob.reach_cost)
    thr0 = list(outer) + [0.0, 0.0]
    running.offer(_line(prob, a, thr0))                # seeds: T_b = 0, and T_a = 0
    running.offer(_line(prob, b, thr0))

    fate = assign_exits(prob.entropy.T, thr0)
    active = fate == c
    gone = np.nonzero(~active)[0]
    base_counts = np.bincount(fate[gone], minlength=k)
    base_correct = int(prob.correct[fate[gone], gone].sum())

    act = np.nonzero(active)[0]
    n_act = act.size
    if n_act > _FIELD_MASK:
        raise EdgeBranchyError(
            f"exact threshold search supports at most {_FIELD_MASK} samples, got {n_act}; "
            "calibrate on a subsample")
    ea, eb = prob.entropy[a, act], prob.entropy[b, act]
    ca = prob.correct[a, act].astype(np.int64)
    cb = prob.correct[b, act].astype(np.int64)
    cc = prob.correct[c, act].astype(np.int64)

    # rows: T_a = 0 (row 0) or just above the j-th smallest distinct finite exit-a entropy (row j)
    fa = np.isfinite(ea)
    va = np.unique(ea[fa])
    m = va.size
    rank_a = np.full(n_act, m + 1, dtype=np.int64)      # non-finite: never leaves at a
    rank_a[fa] = np.searchsorted(va, ea[fa]) + 1
    n0 = np.cumsum(np.bincount(rank_a, minlength=m + 2))[: m + 1]
    corr0 = np.cumsum(np.bincount(rank_a, weights=ca, minlength=m + 2))[: m + 1].astype(np.int64)
    cb_rest = np.cumsum(np.bincount(rank_a, weights=cb, minlength=m + 2))[: m + 1].astype(np.int64)
    row_correct = base_correct + corr0 + (int(cb.sum()) - cb_rest)   # + gain of the column
    t_a = np.zeros(m + 1)
    t_a[1:] = _above(va)
    # cost of row j if every remaining sample left at b (a lower bound for the row), and
    # what each sample that stays to the last exit adds
    base_cost = float(_cost_sum(base_counts, prob.reach_cost))
    row_low = base_cost + n0 * prob.reach_cost[a] + (n_act - n0) * prob.reach_cost[b]
    stay_cost = prob.reach_cost[c] - prob.reach_cost[b]

    # columns: samples by exit-b entropy, highest first (non-finite first: they never leave at b)
    eb_key = np.where(np.isfinite(eb), eb, np.inf)
    order = np.argsort(-eb_key, kind="stable")
    rank_o = rank_a[order]
    eb_o = eb_key[order]
    packed_o = 1 + ((cc - cb)[order] << _FIELD)
    outer_arr = np.asarray(list(outer), dtype=np.float64)

    # reused work space (fresh large arrays each block would cost page faults)
    size = max(_CHUNK_ELEMENTS, n_act + 1)   # at least one row
    bufs = (np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64),
            np.empty(size, bool))

    def rows_block(j0: int, j1: int) -> _Points | None:
        rows = np.arange(j0, j1)
        sel = rank_o > j0                  # samples still present in some row of this block
        r, w, v = rank_o[sel], packed_o[sel], eb_o[sel]
        width = r.size
        # q = how many of these stay to the last exit; valid where the exit-b entropy drops
        valid = np.ones(width + 1, dtype=bool)
        if width:
            valid[0] = np.isfinite(v[0])
            valid[1:width] = v[:-1] > v[1:]
        cols = np.nonzero(valid)[0]
        shape, tshape = (rows.size, width + 1), (rows.size, cols.size)
        buf_x, buf_y, buf_z, buf_b = bufs
        block = buf_x[: shape[0] * shape[1]].reshape(shape)
        block[:, 0] = 0
        below = buf_b[: rows.size * width].reshape(rows.size, width)
        np.greater(r[None, :], rows[:, None], out=below)
        np.multiply(below, w[None, :], out=block[:, 1:])
        np.cumsum(block, axis=1, out=block)
        if cols.size == width + 1:
            prefix, gain = block, buf_y[: block.size].reshape(tshape)
        else:
            prefix = buf_y[: tshape[0] * tshape[1]].reshape(tshape)
            np.take(block, cols, axis=1, out=prefix)
            gain = buf_x[: prefix.size].reshape(tshape)
        np.right_shift(prefix, _FIELD, out=gain)   # (correct at last) - (correct at b) among who stay
        best_cheaper = buf_z[: gain.size].reshape(tshape)
        np.maximum.accumulate(gain, axis=1, out=best_cheaper)
        # a cell must beat every cheaper cell of its row and every earlier point at least as cheap
        # as its row can be (row_low): correct > floor_row
        beaten = np.searchsorted(running.least, row_low[rows] * (1 - _SLACK), side="right") - 1
        floor = (beaten - row_correct[rows])[:, None]
        np.maximum(best_cheaper, floor, out=best_cheaper)
        keep = buf_b[: gain.size].reshape(tshape)
        np.greater(gain[:, 1:], best_cheaper[:, :-1], out=keep[:, 1:])
        np.greater(gain[:, :1], floor, out=keep[:, :1])
        flat = np.flatnonzero(keep)
        j = j0 + flat // tshape[1]
        stay = prefix.reshape(-1)[flat] & _FIELD_MASK
        correct = row_correct[j] + gain.reshape(-1)[flat]
        # prefilter on a cheap cost estimate, then decide on the exact one
        approx = row_low[j] + stay * stay_cost
        margin = _SLACK * np.abs(approx) + 1e-300
        least = np.full(prob.n + 1, np.inf)
        np.minimum.at(least, correct, approx)
        least = np.minimum.accumulate(least[::-1])[::-1]
        near = (approx <= least[correct] + margin) & (approx < running.least[correct] + margin)
        flat, j, stay, correct = flat[near], j[near], stay[near], correct[near]
        counts = np.empty((j.size, k), dtype=np.int64)
        counts[:] = base_counts
        counts[:, a] = n0[j]
        counts[:, b] = n_act - n0[j] - stay
        counts[:, c] = stay
        cost = _cost_sum(counts, prob.reach_cost)
        # the block's own frontier, then only what no earlier block beats
        least = np.full(prob.n + 1, np.inf)
        np.minimum.at(least, correct, cost)
        least = np.minimum.accumulate(least[::-1])[::-1]
        useful = (cost <= least[correct]) & running.useful(correct, cost)
        if not useful.any():
            return None
        j, q = j[useful], cols[flat[useful] % tshape[1]]
        thr = np.empty((j.size, k - 1), dtype=np.float64)
        thr[:, :a] = outer_arr
        thr[:, a] = t_a[j]
        thr[:, b] = 0.0
        inside = q < width
        thr[inside, b] = _above(v[q[inside]])
        return _Points(counts[useful], correct[useful], thr)

    spans, j0 = [], 0
    while j0 <= m:                          # blocks of about _CHUNK_ELEMENTS cells; rows narrow as j grows
        j1 = min(m + 1, j0 + max(1, _CHUNK_ELEMENTS // (n_act - int(n0[j0]) + 1)))
        spans.append((j0, j1))
        j0 = j1
    for span in spans:
        part = rows_block(*span)
        if part is not None:
            running.offer(part)
    return running.points()


# ----------------------------------------------------------------------------- selection

@dataclass(frozen=True)
class _Target:
    method: str
    need: int          # accuracy mode: fewest correct answers allowed
    limit: float       # budget mode: largest total cost allowed (summed over samples)

    def order(self, cost: np.ndarray, correct: np.ndarray) -> np.ndarray:
        """Indices from best to worst (infeasibility first, then the objective, then the tie-break)."""
        if self.method == METHOD_DROP:
            short = np.maximum(self.need - correct, 0)
            return np.lexsort((-correct, cost, short))
        over = np.maximum(cost - self.limit, 0.0)
        return np.lexsort((cost, -correct, over))


def _frontier(points: _Points, reach_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the non-dominated points sorted by cost, with their cost sums and correct counts.

    Of several points with equal cost and accuracy the one with the smallest thresholds
    (compared first to last) is kept.
    """
    cost = _cost_sum(points.counts, reach_cost)
    keys = [points.thresholds[:, j] for j in range(points.thresholds.shape[1] - 1, -1, -1)]
    order = np.lexsort(keys + [-points.correct, cost])
    ranked = points.correct[order]
    best_before = np.maximum.accumulate(ranked)
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = ranked[1:] > best_before[:-1]
    idx = order[keep]
    return idx, cost[idx], points.correct[idx]


def _canonical(prob: _Problem, thresholds: Sequence[float]) -> list[float]:
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


def _search(prob: _Problem, target: _Target) -> tuple[_Points, bool]:
    """All candidate points worth keeping, and whether they cover every candidate tuple."""
    k = prob.k
    if k == 2:
        return _line(prob, 0, [0.0]), True
    if k == 3:
        return _pair(prob, []), True
    cands = [np.r_[0.0, _above(np.unique(e[np.isfinite(e)]))] for e in prob.entropy[: k - 3]]
    combos = math.prod(c.size for c in cands)
    if combos <= _EXHAUSTIVE_COMBOS and combos * float(prob.n) ** 2 <= _EXHAUSTIVE_WORK:
        return _Points.concat([_pair(prob, outer) for outer in itertools.product(*cands)]), True
    return _coordinate_descent(prob, target), False


def _coordinate_descent(prob: _Problem, target: _Target) -> _Points:
    """Improve one outer threshold at a time (exactly), then the last two jointly, until stable."""
    k = prob.k
    thr = [0.0] * (k - 1)
    pool: list[_Points] = []
    best_key: tuple[float, float, float] | None = None

    def adopt(points: _Points) -> tuple[float, float, float]:
        pool.append(points)
        cost = _cost_sum(points.counts, prob.reach_cost)
        j = int(target.order(cost, points.correct)[0])
        thr[:] = points.thresholds[j].tolist()
        corr = float(points.correct[j])
        if target.method == METHOD_DROP:
            return (max(target.need - corr, 0.0), float(cost[j]), -corr)
        return (max(float(cost[j]) - target.limit, 0.0), -corr, float(cost[j]))

    for _ in range(_MAX_ROUNDS):
        for i in range(k - 3):
            adopt(_line(prob, i, thr))
        key = adopt(_pair(prob, thr[: k - 3]))
        if best_key is not None and key >= best_key:
            break
        best_key = key
    return _Points.concat(pool)


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
        """The calibration record of docs/architecture.md; the caller fills cost_source and test."""
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


def _evaluate(prob: _Problem, thresholds: Sequence[float]) -> dict[str, Any]:
    exits = assign_exits(prob.entropy.T, thresholds)
    counts = np.bincount(exits, minlength=prob.k)
    correct = int(prob.correct[exits, np.arange(prob.n)].sum())
    cost = float(_cost_sum(counts, prob.reach_cost)) / prob.n
    return {"accuracy": correct / prob.n, "cost": cost, "relative_cost": cost / prob.baseline_cost,
            "exit_fractions": (counts / prob.n).tolist(), "n": prob.n, "correct": correct}


def evaluate(logits: Sequence[np.ndarray], labels: np.ndarray, thresholds: Sequence[float],
             segment_costs: Sequence[float], baseline_cost: float, normalize: bool = False,
             temperatures: Sequence[float] | None = None,
             entropies: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Accuracy, expected cost, relative cost, exit fractions and n of `thresholds` on one split.

    `entropies` (one array per exit) replaces the entropies computed from `logits`.
    """
    prob = _problem(logits, labels, segment_costs, baseline_cost, normalize, temperatures, entropies)
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
    prob = _problem(logits, labels, segment_costs, baseline_cost, normalize, temperatures, entropies)
    n = prob.n
    final_accuracy = float(prob.correct[-1].mean())
    if reference_accuracy is None:
        ref, ref_name = final_accuracy, "final-exit"
    else:
        ref, ref_name = _number(reference_accuracy, "reference_accuracy"), "baseline"
        if not 0.0 <= ref <= 1.0:
            raise EdgeBranchyError(f"reference_accuracy is a fraction in [0, 1], got {ref}")

    if max_accuracy_drop is not None:
        drop = _number(max_accuracy_drop, "max_accuracy_drop")
        if drop < 0:
            raise EdgeBranchyError(f"max_accuracy_drop must be >= 0 percentage points, got {drop}")
        floor = ref - drop / 100.0
        target = _Target(METHOD_DROP, max(0, math.ceil(n * (floor - _SLACK))), math.inf)
        method, target_value = METHOD_DROP, drop
    else:
        frac = _number(budget, "budget")
        if frac <= 0:
            raise EdgeBranchyError(f"budget must be a fraction of the baseline cost > 0, got {frac}")
        target = _Target(METHOD_BUDGET, 0, frac * prob.baseline_cost * n * (1.0 + _SLACK))
        method, target_value = METHOD_BUDGET, frac

    points, exact = _search(prob, target)
    idx, cost, correct = _frontier(points, prob.reach_cost)
    if method == METHOD_DROP:
        ok = np.nonzero(correct >= target.need)[0]
        if ok.size == 0:
            raise EdgeBranchyError(
                f"no thresholds keep accuracy within {drop:g} points of {100 * ref:.2f}% "
                f"(at least {100 * floor:.2f}%): the best achievable on this split is "
                f"{100 * correct[-1] / n:.2f}%")
        chosen = int(ok[0])
    else:
        ok = np.nonzero(cost <= target.limit)[0]
        if ok.size == 0:
            raise EdgeBranchyError(
                f"no thresholds meet the budget of {100 * frac:.2f}% of the baseline cost: "
                f"the cheapest achievable is {100 * cost[0] / n / prob.baseline_cost:.2f}%")
        chosen = int(ok[-1])

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
        cost=ev["cost"], relative_cost=ev["relative_cost"], n=n, method=method,
        target=target_value, reference_accuracy=ref, frontier=frontier, reference=ref_name,
        segment_costs=prob.segment_costs.tolist(),
        baseline_cost=prob.baseline_cost,
        temperatures=None if temperatures is None else [float(t) for t in temperatures],
        exact=exact)
