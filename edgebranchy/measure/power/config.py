"""The settings a power meter reads from a device profile's `[power]` table (validated by the profile schema,
`device/profile_schema.py`, which composes them into a `Profile`). Standard library only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EstimateConfig:
    """Coefficients of the CPU-time power estimate (see measure/power/estimate.py)."""

    model: str
    p_idle_w: float
    p_max_w: float | None
    p_active_core_w: float | None
    p_idle_core_w: float | None
    scope: str
    source: str  # where the numbers come from


@dataclass(frozen=True)
class PowerConfig:
    source: str
    total_rail: str | None  # None: the Jetson rule; "sum": sum of rails; else a rail name
    interval_ms: int
    estimate: EstimateConfig


class MeterProfile(Protocol):
    """What the meters read of a device profile (a `device.profile_schema.Profile` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def power(self) -> PowerConfig: ...
