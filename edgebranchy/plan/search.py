"""The placement search: at most K side exits among the candidates, and their thresholds, that maximise the
expected speedup at the accuracy target (or the accuracy within a cost budget).

Every set of 1..K candidates is a network: segment k is the prefix from exit k-1's point to exit k's plus exit k's
head, the last segment the rest of the model. Its thresholds come from calibrate's exact search
(`exits.calibrate.calibrate`, the one `edgebranchy calibrate` uses) on the validation logits, with the measured
costs; the placement chosen is the cheapest that meets the accuracy target (ties: more accurate, fewer exits), or
the most accurate within the budget (ties: cheaper, fewer exits). Numpy only.
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError


def segment_costs(points: Sequence[str], costs: dict) -> list[float]:
    """Per-segment costs of the network with side exits at `points` (in execution order): prefix differences
    (never below 0: two timings of nearly the same prefix can cross) plus each side exit's head."""
    pre = [0.0] + [float(costs["prefix"][p]) for p in points]
    segs = [max(0.0, pre[i + 1] - pre[i]) + float(costs["head"][p]) for i, p in enumerate(points)]
    return segs + [max(0.0, float(costs["baseline"]) - pre[-1])]


def evaluate_placement(points: Sequence[str], logits: dict, final: np.ndarray, labels: np.ndarray, costs: dict,
                       max_accuracy_drop: float | None, budget: float | None) -> dict:
    """The exact threshold search for one placement: thresholds, accuracy, relative cost, speedup, exit fractions
    on the validation split; EdgeBranchyError when no thresholds meet the target."""
    from edgebranchy.exits.calibrate import calibrate

    res = calibrate([logits[p] for p in points] + [final], labels, segment_costs(points, costs),
                    float(costs["baseline"]), max_accuracy_drop=max_accuracy_drop, budget=budget)
    return {"split_points": list(points), "thresholds": [float(t) for t in res.thresholds],
            "accuracy": res.accuracy, "relative_cost": res.relative_cost,
            "speedup": (1.0 / res.relative_cost) if res.relative_cost > 0 else None,
            "exit_fractions": list(res.exit_fractions), "segment_costs": list(res.segment_costs), "n": res.n,
            "exact": bool(res.exact)}


def search(names: Sequence[str], logits: dict, final: np.ndarray, labels: np.ndarray, costs: dict, max_exits: int,
           max_accuracy_drop: float | None = None, budget: float | None = None) -> dict:
    """{"chosen": the best placement, "placements": every placement that meets the target (best first),
    "infeasible": how many did not}. `names` in execution order; `logits[name]`: its head's validation logits.
    Each placement's thresholds are exact for up to 2 side exits (`exact` says so per placement)."""
    if (max_accuracy_drop is None) == (budget is None):
        raise EdgeBranchyError("give exactly one of `max_accuracy_drop` and `budget`")
    if not isinstance(max_exits, int) or max_exits < 1:
        raise EdgeBranchyError(f"`max_exits` must be a whole number >= 1, got {max_exits!r}")
    rows, failed = [], 0
    for r in range(1, min(max_exits, len(names)) + 1):
        for pts in combinations(names, r):
            try:
                rows.append(evaluate_placement(pts, logits, final, labels, costs, max_accuracy_drop, budget))
            except EdgeBranchyError:
                failed += 1
    if not rows:
        raise EdgeBranchyError(f"no placement of at most {max_exits} exit(s) among {len(names)} candidate(s) meets "
                               "the target on the validation split")
    if budget is None:
        rows.sort(key=lambda r: (r["relative_cost"], -r["accuracy"], len(r["split_points"])))
    else:
        rows.sort(key=lambda r: (-r["accuracy"], r["relative_cost"], len(r["split_points"])))
    return {"chosen": rows[0], "placements": rows, "infeasible": failed}


def frontier(rows: Sequence[dict]) -> list[dict]:
    """The placements no other beats on both accuracy and cost, by relative cost."""
    out, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r["relative_cost"], -r["accuracy"])):
        if r["accuracy"] > best:
            out.append(r)
            best = r["accuracy"]
    return out
