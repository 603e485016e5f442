"""The power-meter contract, plus the pieces the sampled sources share.

A `PowerMeter` measures one window at a time: `start()`, run the work,
`stop()` returns an `EnergyReading`. Every reading carries its provenance
(what the figure covers, energy counter or sampled power, the sensor's own
update interval, the sampling interval used) and a `flag` when the window was
too short for the sensor or the source returned no energy: a flagged reading
is kept for the record but never reported as a figure. Sources that sample power (tegrastats,
INA3221 sysfs) keep time-stamped samples in a `SampleBuffer` and integrate them
with `integrate_mw`; the Jetson rule for which rail is the module total lives
in `total_power_mw` so every Jetson source applies the same one.
"""
from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from edgebranchy.errors import EdgeBranchyError

KINDS = ("measured", "estimated")

#: Rails that measure the whole module, best first (NVIDIA's Jetson power docs): VIN (Thor),
#: POM_5V_IN (Nano), VDD_IN (TX2, Xavier NX, Orin NX/Nano). Boards with none
#: of them (AGX Xavier, AGX Orin) are summed over all connected rails.
TOTAL_RAILS = ("VIN", "POM_5V_IN", "VDD_IN")

#: The label tegrastats and the INA3221 driver give an unconnected channel.
UNCONNECTED = "NC"

#: What an energy figure covers.
COVERS = ("module-input-rail", "named-rail", "rail-sum", "gpu-board", "cpu-package", "board-external", "estimate")
#: How it was obtained.
METHODS = ("energy-counter", "sampled-power", "model")
#: A window needs at least this many power samples (sampled sources) ...
MIN_SAMPLES = 5
#: ... and must last this many times the sensor's update (or sampling) interval: with
#: a reading quantised to u at each edge, the edge error is then at most 2u/T = 20%.
MIN_UPDATE_MULTIPLE = 10


@dataclass(frozen=True)
class Provenance:
    """Where an energy figure comes from."""

    covers: str  # one of COVERS
    detail: str  # e.g. "VDD_IN: the module's input rail; carrier board and USB peripherals not included"
    method: str  # one of METHODS
    sensor_update_s: float | None  # how often the sensor itself produces a new value
    sampling_interval_s: float | None  # how often we read it (None: read at the window edges only)

    def __post_init__(self) -> None:
        if self.covers not in COVERS:
            raise ValueError(f"Provenance.covers must be one of {COVERS}, got {self.covers!r}")
        if self.method not in METHODS:
            raise ValueError(f"Provenance.method must be one of {METHODS}, got {self.method!r}")

    @property
    def resolution_s(self) -> float | None:
        """The coarser of the sensor's update and our sampling interval."""
        vals = [v for v in (self.sensor_update_s, self.sampling_interval_s) if v]
        return max(vals) if vals else None

    def to_dict(self) -> dict:
        return asdict(self)


def window_flag(joules: float, seconds: float, samples: int, kind: str, prov: "Provenance | None",
                min_samples: int = MIN_SAMPLES, min_update_multiple: float = MIN_UPDATE_MULTIPLE) -> str | None:
    """Why a window's energy must not be reported as a figure, or None when it may."""
    if prov is None:
        return None
    res = prov.resolution_s
    if prov.method == "sampled-power" and samples < min_samples:
        return (f"only {samples} power sample(s) in the {seconds:.3g} s window (at least {min_samples} needed; "
                f"sampling every {prov.sampling_interval_s or 0:.3g} s): lengthen the window (--min-window)")
    if res and seconds < min_update_multiple * res:
        return (f"window {seconds:.3g} s is shorter than {min_update_multiple:g} x the sensor's "
                f"{res:.3g} s update interval: lengthen the window (--min-window)")
    if kind == "measured" and joules <= 0 and (res is None or seconds >= res):
        return f"the source returned no energy over {seconds:.3g} s ({prov.detail}): not a measurement"
    return None


def shortest_window_s(prov: "Provenance | None") -> float:
    """The shortest trial window whose energy `window_flag` lets through for this source (0: any): at least
    MIN_SAMPLES + 1 samples of a sampled source, and MIN_UPDATE_MULTIPLE x its resolution."""
    if prov is None:
        return 0.0
    need = [MIN_UPDATE_MULTIPLE * prov.resolution_s] if prov.resolution_s else []
    if prov.method == "sampled-power" and prov.sampling_interval_s:
        need.append((MIN_SAMPLES + 1) * prov.sampling_interval_s)
    return max(need, default=0.0)


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one measurement window."""

    joules: float
    seconds: float
    watts: float
    samples: int
    source: str
    kind: str  # "measured" | "estimated"
    provenance: dict | None = None  # Provenance.to_dict()
    flag: str | None = None  # set: too short for the sensor, or no energy returned; never report it

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"EnergyReading.kind must be one of {KINDS}, got {self.kind!r}")

    @classmethod
    def from_window(cls, joules: float, seconds: float, samples: int, source: str, kind: str,
                    provenance: Provenance | None = None) -> "EnergyReading":
        """A reading whose average power is joules / seconds (0 for an empty window), flagged by `window_flag`."""
        watts = joules / seconds if seconds > 0 else 0.0
        return cls(float(joules), float(seconds), float(watts), int(samples), source, kind,
                   provenance.to_dict() if provenance else None,
                   window_flag(joules, seconds, samples, kind, provenance))

    @property
    def usable(self) -> bool:
        """Whether the reading may be reported as a figure."""
        return self.flag is None

    def to_dict(self) -> dict:
        """A JSON-ready dict of the fields."""
        return asdict(self)


class PowerMeter(ABC):
    """Measures the energy of one window at a time: `start()`, work, `stop()`."""

    name: str = "?"
    kind: str = "measured"

    _t_start: float | None = None

    @abstractmethod
    def start(self) -> None:
        """Open a measurement window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """Close the window opened by `start()` and return its energy."""

    @classmethod
    @abstractmethod
    def available(cls, **opts) -> tuple[bool, str]:
        """Whether this source can be used here with these options, and why (not)."""

    def describe(self) -> dict:
        """The settings of this meter, for the results file."""
        return {"source": self.name, "kind": self.kind}

    def provenance(self) -> Provenance | None:
        """What this meter's figures cover and how they are obtained (None: not stated)."""
        return None

    def _reading(self, joules: float, seconds: float, samples: int) -> EnergyReading:
        return EnergyReading.from_window(joules, seconds, samples, self.name, self.kind, self.provenance())

    def close(self) -> None:
        """Release what the meter holds (subprocess, threads, library handles)."""

    def __enter__(self) -> "PowerMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Window bookkeeping shared by the sources.
    def _open_window(self) -> float:
        if self._t_start is not None:
            raise EdgeBranchyError(f"{self.name}: start() called twice without stop()")
        self._t_start = time.perf_counter()
        return self._t_start

    def _close_window(self) -> tuple[float, float]:
        if self._t_start is None:
            raise EdgeBranchyError(f"{self.name}: stop() called without start()")
        t0, self._t_start = self._t_start, None
        return t0, time.perf_counter()


def rail_provenance(total_from: str | None, rails: Sequence[str] | None, sampling_interval_s: float,
                    sensor_update_s: float = 0.1) -> Provenance:
    """Provenance of a Jetson INA3221 total (tegrastats or sysfs): input rail, a named rail or a sum."""
    shown = ", ".join(rails or []) or "?"
    if total_from in TOTAL_RAILS:
        covers = "module-input-rail"
        detail = f"{total_from}: the module's input rail; carrier board and USB peripherals not included"
    elif total_from == "sum" or total_from is None:
        covers = "rail-sum"
        detail = (f"sum of rails {shown} (no input rail on this board): what the rails feed, "
                  "not the carrier board")
    else:
        covers, detail = "named-rail", f"rail {total_from} only"
    # the Jetson INA3221 updates at roughly 10 Hz or slower (energy.md)
    return Provenance(covers, detail, "sampled-power", sensor_update_s, sampling_interval_s)


def total_power_mw(rails: Mapping[str, float], total_rail: str | None = None) -> tuple[float, str]:
    """The module's total power (mW) from connected rails, and the rail it came from.

    `total_rail` None applies the Jetson rule (VIN > POM_5V_IN > VDD_IN > sum of
    all rails); "sum" forces the sum; any other name takes that rail and fails
    when it is absent.
    """
    connected = {k: v for k, v in rails.items() if k != UNCONNECTED}
    if not connected:
        raise EdgeBranchyError("no connected power rails to total")
    if total_rail is None:
        for name in TOTAL_RAILS:
            if name in connected:
                return float(connected[name]), name
        return float(sum(connected.values())), "sum"
    if total_rail == "sum":
        return float(sum(connected.values())), "sum"
    if total_rail not in connected:
        raise EdgeBranchyError(
            f"total rail {total_rail!r} not found; rails present: {', '.join(sorted(connected))}"
        )
    return float(connected[total_rail]), total_rail


def integrate_mw(times_s: Sequence[float], power_mw: Sequence[float], t0: float, t1: float) -> tuple[float, int]:
    """Energy in joules over [t0, t1] of power samples (seconds, mW), and how many fall inside.

    Power is linear between samples (trapezoid rule) and held at the first /
    last sample before the first and after the last one.
    """
    import numpy as np

    if len(times_s) != len(power_mw):
        raise ValueError("times and powers differ in length")
    if len(times_s) == 0:
        raise EdgeBranchyError("no power samples to integrate")
    if not (t1 >= t0):
        raise ValueError(f"window end {t1} before start {t0}")
    t = np.asarray(times_s, dtype=float)
    p = np.asarray(power_mw, dtype=float)
    if np.any(np.diff(t) < 0):
        raise ValueError("sample times must be non-decreasing")
    inside = (t >= t0) & (t <= t1)
    knots = np.concatenate(([t0], t[(t > t0) & (t < t1)], [t1]))
    values = np.interp(knots, t, p)
    joules = float(np.sum((values[1:] + values[:-1]) * 0.5 * np.diff(knots))) / 1000.0
    return joules, int(np.count_nonzero(inside))


class SampleBuffer:
    """Thread-safe, time-ordered (perf_counter seconds, mW) samples from a reader thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._t: list[float] = []
        self._p: list[float] = []
        self.closed = False

    def add(self, t: float, mw: float) -> None:
        if not math.isfinite(mw):
            raise EdgeBranchyError(f"non-finite power sample {mw!r}")
        with self._cond:
            self._t.append(t)
            self._p.append(mw)
            self._cond.notify_all()

    def close(self) -> None:
        """Mark the producer finished; wakes any waiter."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._t)

    def wait_for_sample_after(self, t: float, timeout_s: float) -> bool:
        """Wait until a sample later than `t` exists; False on timeout or a closed buffer."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not (self._t and self._t[-1] > t):
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def snapshot(self) -> tuple[list[float], list[float]]:
        with self._cond:
            return list(self._t), list(self._p)

    def drop_before(self, t: float) -> None:
        """Forget samples older than the last one at or before `t`."""
        with self._cond:
            keep = 0
            for i, ti in enumerate(self._t):
                if ti <= t:
                    keep = i
                else:
                    break
            del self._t[:keep]
            del self._p[:keep]
