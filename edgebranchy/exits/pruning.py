"""Calibration that may switch side exits off entirely.

A side exit with threshold 0 lets no sample leave (entropy >= 0 and the rule is
strict), and the export fuses its stage into the next segment, so its head
costs nothing on the device. When the cost of each head is known, the search
therefore runs once per subset of enabled side exits, with the heads of the
disabled ones removed from the cost, and keeps the best answer overall. This
matters when a head is expensive (B-ResNet's first branch costs more than a
ResNet-20 trunk).
"""
from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.calibrate import CalibrationResult, calibrate, evaluate
from edgebranchy.models.segments import fused_costs


def effective_costs(segment_costs: Sequence[float], head_costs: Sequence[float] | None,
                    thresholds: Sequence[float]) -> list[float]:
    """Segment costs with the heads of switched-off side exits (threshold 0) removed."""
    costs = [float(c) for c in segment_costs]
    if head_costs is None:
        return costs
    if len(head_costs) != len(costs):
        raise EdgeBranchyError(f"{len(costs)} segment costs but {len(head_costs)} head costs")
    for k, t in enumerate(thresholds):
        if float(t) <= 0.0:
            costs[k] -= float(head_costs[k])
    return costs


def evaluate_pruned(logits, labels, thresholds, segment_costs, head_costs, baseline_cost, **kw) -> dict:
    """`evaluate` with the cost of switched-off exits' heads removed."""
    return evaluate(logits, labels, thresholds, effective_costs(segment_costs, head_costs, thresholds),
                    baseline_cost, **kw)


def calibrate_pruned(logits: Sequence[np.ndarray], labels: np.ndarray, segment_costs: Sequence[float],
                     head_costs: Sequence[float] | None, baseline_cost: float, *,
                     max_accuracy_drop: float | None = None, budget: float | None = None,
                     reference_accuracy: float | None = None, normalize: bool = False,
                     temperatures: Sequence[float] | None = None, max_frontier_points: int = 200,
                     entropies: Sequence[np.ndarray] | None = None) -> CalibrationResult:
    """`calibrate` over every subset of enabled side exits (exact per subset); without head costs, plain `calibrate`.
    `entropies` (one array per exit): a deployed graph's own, used instead of the ones computed from the logits."""
    common = dict(max_accuracy_drop=max_accuracy_drop, budget=budget, reference_accuracy=reference_accuracy,
                  normalize=normalize, max_frontier_points=max_frontier_points)
    if head_costs is None:
        return calibrate(logits, labels, segment_costs, baseline_cost, temperatures=temperatures,
                         entropies=entropies, **common)
    K = len(logits)
    if len(head_costs) != K or len(segment_costs) != K:
        raise EdgeBranchyError(f"{K} exits need {K} segment and head costs")
    temps = list(temperatures) if temperatures is not None else None
    stage = [float(s) - float(h) for s, h in zip(segment_costs, head_costs)]
    results: list[tuple[CalibrationResult, list[int]]] = []
    errors: list[str] = []
    for r in range(K - 1, 0, -1):
        for side in combinations(range(K - 1), r):
            keep = list(side) + [K - 1]
            sub_costs = fused_costs(stage, [float(h) for h in head_costs], keep)
            try:
                res = calibrate([logits[j] for j in keep], labels, sub_costs, baseline_cost,
                                temperatures=[temps[j] for j in keep] if temps else None,
                                entropies=[entropies[j] for j in keep] if entropies is not None else None, **common)
            except EdgeBranchyError as e:
                errors.append(str(e))
                continue
            results.append((res, keep))
    if not results:
        raise EdgeBranchyError(errors[0] if errors else "no exit subset could be calibrated")
    drop = max_accuracy_drop is not None
    best, keep = min(results, key=lambda rk: (rk[0].cost, -rk[0].accuracy) if drop
                     else (-rk[0].accuracy, rk[0].cost))
    full = _expand(best.thresholds, keep, K)
    ev = evaluate_pruned(logits, labels, full, segment_costs, head_costs, baseline_cost, normalize=normalize,
                         temperatures=temps, entropies=entropies)
    frontier = _merge_frontiers(results, K, max_frontier_points, full, ev)
    return CalibrationResult(
        thresholds=full, exit_fractions=ev["exit_fractions"], accuracy=ev["accuracy"], cost=ev["cost"],
        relative_cost=ev["relative_cost"], n=ev["n"], method=best.method, target=best.target,
        reference_accuracy=best.reference_accuracy, frontier=frontier, reference=best.reference,
        segment_costs=[float(c) for c in segment_costs], baseline_cost=float(baseline_cost),
        temperatures=temps, exact=all(r.exact for r, _ in results))


def _expand(thresholds: Sequence[float], keep: list[int], K: int) -> list[float]:
    full = [0.0] * (K - 1)
    for t, j in zip(thresholds, keep[:-1]):
        full[j] = float(t)
    return full


def _merge_frontiers(results, K: int, max_points: int, chosen: list[float], ev: dict) -> list[dict[str, Any]]:
    """Non-dominated points of every subset's frontier, thinned, with the chosen point kept."""
    pts = [{"thresholds": _expand(p["thresholds"], keep, K), "accuracy": p["accuracy"],
            "relative_cost": p["relative_cost"]} for res, keep in results for p in res.frontier]
    pts.append({"thresholds": chosen, "accuracy": ev["accuracy"], "relative_cost": ev["relative_cost"]})
    pts.sort(key=lambda p: (p["relative_cost"], -p["accuracy"]))
    front, best = [], -1.0
    for p in pts:
        if p["accuracy"] > best:
            front.append(p)
            best = p["accuracy"]
    if len(front) > max_points:
        idx = set(np.linspace(0, len(front) - 1, max_points - 1).round().astype(int).tolist())
        idx |= {i for i, p in enumerate(front) if p["thresholds"] == chosen}
        front = [front[i] for i in sorted(idx)]
    return front
