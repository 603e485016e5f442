"""Entropy, the early-exit rule, temperature scaling and threshold calibration (numpy only).

`calibrate` is a submodule here (``from edgebranchy.exits.calibrate import calibrate``):
re-exporting the function under the same name would hide the module.
"""
from edgebranchy.exits.calibrate import CalibrationResult, evaluate
from edgebranchy.exits.entropy import entropy, log_softmax
from edgebranchy.exits.rule import assign_exits, confident
from edgebranchy.exits.temperature import fit_temperature

__all__ = [
    "CalibrationResult",
    "assign_exits",
    "confident",
    "entropy",
    "evaluate",
    "fit_temperature",
    "log_softmax",
]
