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
