"""Type checks on user-supplied values, written once (a bool is an int in Python, but never a count)."""
from __future__ import annotations

import math
from typing import Any


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int_at_least(value: Any, lo: int, hi: int | None = None) -> bool:
    """True for an int (not a bool) in [lo, hi] (no upper bound when hi is None)."""
    return is_int(value) and value >= lo and (hi is None or value <= hi)


def is_finite_at_least(value: Any, lo: float = 0.0) -> bool:
    """True for a finite number (not a bool) >= lo."""
    return is_number(value) and math.isfinite(value) and value >= lo


def validate_thresholds(values, count: int | None = None, where: str = "thresholds") -> list[float]:
    """User-given thresholds (API, CLI, manifest, checkpoint) as floats: a list of finite numbers >= 0,
    not booleans or strings; `count` of them when given. One EdgeBranchyError names `where` and the entry."""
    import numpy as np

    from edgebranchy.errors import EdgeBranchyError

    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise EdgeBranchyError(f"{where} must be a list of numbers, got {type(values).__name__}")
    out = []
    for k, t in enumerate(values):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)):
            raise EdgeBranchyError(f"{where}[{k}] must be a number >= 0, got {t!r}")
        t = float(t)
        if not (math.isfinite(t) and t >= 0):
            raise EdgeBranchyError(f"{where}[{k}] must be a finite number >= 0 (0 switches the exit off), got {t!r}")
        out.append(t)
    if count is not None and len(out) != count:
        raise EdgeBranchyError(f"{where}: {count + 1} exits need {count} threshold{'s' if count != 1 else ''} "
                               f"(the last exit always answers), got {len(out)}")
    return out
