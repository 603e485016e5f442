"""What a calibration aims at: an accuracy drop, a cost budget, or hand-picked thresholds; checked in one place.

The messages name the settings as the library takes them (`max_accuracy_drop`); the CLI names its flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from edgebranchy.artifact.calibration import REFERENCES
from edgebranchy.errors import EdgeBranchyError

#: the accuracy a calibration gives up when no target is given, in percentage points
DEFAULT_DROP = 0.5


@dataclass(frozen=True)
class Target:
    """One of: `max_accuracy_drop` (points below the reference), `budget` (a fraction of the baseline's cost), or
    `thresholds` (evaluated, not searched); `reference` is what the drop is measured from."""

    max_accuracy_drop: Optional[float] = None
    budget: Optional[float] = None
    thresholds: Optional[Sequence[float]] = None
    reference: str = "final-exit"

    @property
    def method(self) -> str:
        if self.thresholds is not None:
            return "manual"
        return "budget" if self.budget is not None else "max-accuracy-drop"

    def for_exits(self, num_exits: int, name: str) -> "Target":
        """This target for a network of `num_exits` exits (`name` in the message): one with a single exit has
        nothing to calibrate, and hand-picked thresholds must be one per side exit."""
        from edgebranchy.util.checks import validate_thresholds

        if num_exits < 2:
            raise EdgeBranchyError(f"{name}: a network with one exit has no threshold to calibrate")
        if self.thresholds is None:
            return self
        ts = validate_thresholds(self.thresholds, num_exits - 1, where="`thresholds`")
        return Target(thresholds=ts, reference=self.reference)


def make_target(max_accuracy_drop: Optional[float] = None, budget: Optional[float] = None,
                thresholds: Optional[Sequence[float]] = None, reference: str = "final-exit") -> Target:
    """The target these settings ask for, each checked; with none of the three, a drop of DEFAULT_DROP points."""
    from edgebranchy.util.checks import is_finite_at_least

    if sum(v is not None for v in (max_accuracy_drop, budget, thresholds)) > 1:
        raise EdgeBranchyError("give one of `max_accuracy_drop`, `budget` and `thresholds`")
    if reference not in REFERENCES:
        raise EdgeBranchyError(f"`reference` must be final-exit or baseline, got {reference!r}")
    if max_accuracy_drop is not None and not (is_finite_at_least(max_accuracy_drop, 0) and max_accuracy_drop <= 100):
        raise EdgeBranchyError(f"`max_accuracy_drop` must be a number of percentage points from 0 to 100, "
                               f"got {max_accuracy_drop!r}")
    if budget is not None and not (is_finite_at_least(budget, 0) and 0 < budget <= 1):
        raise EdgeBranchyError(f"`budget` must be a fraction in (0, 1], got {budget!r}")
    if thresholds is not None:
        return Target(thresholds=thresholds, reference=reference)
    if budget is None and max_accuracy_drop is None:
        max_accuracy_drop = DEFAULT_DROP
    return Target(max_accuracy_drop=max_accuracy_drop, budget=budget, reference=reference)
