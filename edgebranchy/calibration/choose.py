"""The use case: `calibrate(source, target, costs) -> CalibrationRecord`, the same search and record for every source.

A source (a checkpoint's logits collected with torch: `checkpoint_source.py`; an artifact run on a backend:
`artifact_source.py`) gives every exit's logits on the validation and test splits (`Outputs`); the exact search
of `exits/` chooses the thresholds for the target (or evaluates the ones given) at these costs; the record is
checked when it is made.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from edgebranchy.artifact.calibration import CalibrationRecord
from edgebranchy.calibration.costs import Costs
from edgebranchy.calibration.target import Target


@dataclass
class Outputs:
    """What a source collected: every exit's logits [N, C] on both splits and the labels; the entropies the deployed
    graphs computed (None: computed from the logits); the baseline's validation accuracy where it was run."""

    val_logits: List[np.ndarray]
    val_labels: np.ndarray
    test_logits: List[np.ndarray]
    test_labels: np.ndarray
    val_entropies: Optional[List[np.ndarray]] = None
    test_entropies: Optional[List[np.ndarray]] = None
    baseline_accuracy: Optional[float] = None
    temperatures: Optional[List[float]] = None
    normalized: bool = False

    def evaluate(self, thresholds, costs: Costs, split: str = "validation") -> dict:
        """Accuracy, cost, relative cost, exit fractions and n of `thresholds` on one split."""
        from edgebranchy.exits.pruning import evaluate_pruned

        logits, labels, ents = ((self.val_logits, self.val_labels, self.val_entropies) if split == "validation"
                                else (self.test_logits, self.test_labels, self.test_entropies))
        return evaluate_pruned(logits, labels, thresholds, costs.segment, costs.head, costs.baseline,
                               normalize=self.normalized, temperatures=self.temperatures, entropies=ents)

    def final_exit_accuracy(self) -> dict:
        return {"validation": float((self.val_logits[-1].argmax(1) == self.val_labels).mean()),
                "test": float((self.test_logits[-1].argmax(1) == self.test_labels).mean())}


def calibrate(source, target: Target, costs: Costs, warn: Optional[Callable[[str], None]] = None) -> CalibrationRecord:
    """Collect the source's outputs and choose (or evaluate) its thresholds: the calibration record."""
    target = target.for_exits(source.num_exits, source.name)
    return choose(source.collect(need_baseline=target.reference == "baseline"), target, costs, warn)


def choose(out: Outputs, target: Target, costs: Costs,
           warn: Optional[Callable[[str], None]] = None) -> CalibrationRecord:
    """The thresholds for `target` on the validation outputs, with their validation and test metrics. `warn` gets
    the warning when a side exit beats the final exit on the validation split (a broken final exit)."""
    from edgebranchy.artifact.plausibility import calibration_warning
    from edgebranchy.exits.pruning import calibrate_pruned

    beaten = calibration_warning(out.val_logits, out.val_labels, target.reference, out.baseline_accuracy)
    if beaten and warn is not None:
        warn(beaten)
    t0 = time.perf_counter()
    if target.method == "manual":
        chosen = {"method": "manual", "target": None, "reference": target.reference, "segment_costs": costs.segment,
                  "baseline_cost": costs.baseline, "thresholds": [float(t) for t in target.thresholds],
                  "temperatures": out.temperatures, "validation": out.evaluate(target.thresholds, costs),
                  "frontier": None}
    else:
        res = calibrate_pruned(out.val_logits, out.val_labels, costs.segment, costs.head, costs.baseline,
                               max_accuracy_drop=target.max_accuracy_drop, budget=target.budget,
                               reference_accuracy=out.baseline_accuracy if target.reference == "baseline" else None,
                               normalize=out.normalized, temperatures=out.temperatures, entropies=out.val_entropies)
        chosen = res.to_dict()
    search_seconds = time.perf_counter() - t0
    chosen.update(cost_source=costs.source, normalized=bool(out.normalized), head_costs=costs.head,
                  search_seconds=search_seconds, test=out.evaluate(chosen["thresholds"], costs, "test"),
                  final_exit_accuracy=out.final_exit_accuracy(),
                  baseline_accuracy=(None if out.baseline_accuracy is None
                                     else {"validation": out.baseline_accuracy}))
    return CalibrationRecord(**chosen)
