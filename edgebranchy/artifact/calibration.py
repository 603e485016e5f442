"""The calibration record: what `calibrate` stores in the checkpoint config and export copies into the manifest
(and, with where it ran, in an artifact's `device_calibration`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import validate_thresholds

METHODS = ("max-accuracy-drop", "budget", "manual")
REFERENCES = ("final-exit", "baseline")


@dataclass(frozen=True)
class CalibrationRecord:
    """Every key of the record (docs/contracts.md, "Calibration record"); `to_dict` is what is stored.

    `validation` and `test` are evaluations ({"accuracy", "cost", "relative_cost",
    "exit_fractions", "n"}); `frontier` is None for hand-picked thresholds.
    """

    method: str                       # "max-accuracy-drop" | "budget" | "manual"
    target: float | None
    reference: str                    # "final-exit" | "baseline"
    cost_source: str
    segment_costs: list[float]
    baseline_cost: float
    thresholds: list[float]
    temperatures: list[float] | None
    validation: dict
    test: dict | None
    frontier: list[dict] | None
    normalized: bool = False          # entropy divided by ln(C)
    reference_accuracy: float | None = None
    head_costs: list[float] | None = None   # None: measured costs, no exit can be switched off
    final_exit_accuracy: dict | None = None  # {"validation", "test"}
    baseline_accuracy: dict | None = None    # {"validation"}
    search_seconds: float | None = None

    def __post_init__(self) -> None:
        """A record is checked when it is made, on every path that makes one: the method and reference are known
        words, and there is one threshold (finite, >= 0) per side exit, one side exit fewer than segment costs."""
        if self.method not in METHODS:
            raise EdgeBranchyError(f"calibration record: method must be one of {', '.join(METHODS)}, "
                                   f"got {self.method!r}")
        if self.reference not in REFERENCES:
            raise EdgeBranchyError(f"calibration record: reference must be one of {', '.join(REFERENCES)}, "
                                   f"got {self.reference!r}")
        validate_thresholds(self.thresholds, len(self.segment_costs) - 1, where="calibration record thresholds")

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values (numpy scalars become Python numbers)."""
        return _jsonable(asdict(self))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
