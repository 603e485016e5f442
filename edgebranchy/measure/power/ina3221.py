"""Jetson power read straight from the INA3221 sensors in sysfs (no tegrastats needed).

Two driver layouts, rails always found by their label (hwmon and iio device
numbers change across boots):

- JetPack 5+ (`ina3221` hwmon driver):
  `sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in{K}_label`, `in{K}_input` (mV),
  `curr{K}_input` (mA); power = mV * mA / 1000 mW.
- JetPack 4 (`ina3221x` iio driver):
  `sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_{K}`, `in_power{K}_input` (mW).

The module total follows the same rule as tegrastats (`base.total_power_mw`).
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int_at_least
from edgebranchy.measure.power.meter import (
    UNCONNECTED,
    EnergyReading,
    PowerMeter,
    Provenance,
    SampleBuffer,
    integrate_mw,
    rail_provenance,
    total_power_mw,
)

HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_label"
IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*"


@dataclass(frozen=True)
class Rail:
    """One connected sensor channel and the files that give its power."""

    name: str
    layout: str  # "hwmon" (JetPack 5+) | "iio" (JetPack 4)
    files: tuple[Path, ...]  # hwmon: (mV file, mA file); iio: (mW file,)

    def read_mw(self) -> float:
        """The rail's power now, in mW."""
        values = [float(f.read_text().strip()) for f in self.files]
        if self.layout == "hwmon":
            return values[0] * values[1] / 1000.0
        return values[0]


def _channel(path: Path, pattern: str) -> str | None:
    m = re.fullmatch(pattern, path.name)
    return m.group(1) if m else None


def find_rails(root: str | Path = "/") -> list[Rail]:
    """Every connected INA3221 rail under `root`, in a stable order (both layouts)."""
    root = Path(root)
    found: list[tuple[str, str, tuple[Path, ...]]] = []
    for label_file in sorted(root.glob(HWMON_GLOB)):
        k = _channel(label_file, r"in([0-9]+)_label")
        if k is None:
            continue
        volts, amps = label_file.with_name(f"in{k}_input"), label_file.with_name(f"curr{k}_input")
        if volts.is_file() and amps.is_file():  # channels without a current (sums, shunts) are not rails
            found.append((label_file.read_text().strip(), "hwmon", (volts, amps)))
    for name_file in sorted(root.glob(IIO_GLOB)):
        k = _channel(name_file, r"rail_name_([0-9]+)")
        if k is None:
            continue
        power = name_file.with_name(f"in_power{k}_input")
        if power.is_file():
            found.append((name_file.read_text().strip(), "iio", (power,)))
    rails: list[Rail] = []
    seen: set[str] = set()
    for name, layout, files in found:
        if not name or name == UNCONNECTED:
            continue
        key, n = name, 2
        while key in seen:
            key, n = f"{name}#{n}", n + 1
        seen.add(key)
        rails.append(Rail(key, layout, files))
    return rails


class Ina3221Meter(PowerMeter):
    """Jetson module power sampled from INA3221 sysfs files by a background thread.

    A sample is taken at the window start, every `interval_ms` during it, and
    at its end; the energy is the trapezoid integral of the total.
    """

    name = "ina3221"
    kind = "measured"

    def __init__(self, root: str | Path = "/", interval_ms: int = 100, total_rail: str | None = None) -> None:
        if not is_int_at_least(interval_ms, 1):
            raise EdgeBranchyError(f"INA3221 sampling interval must be an integer >= 1 ms, got {interval_ms!r}")
        self.root = Path(root)
        self.interval_ms = interval_ms
        self.total_rail = total_rail
        self._rails: list[Rail] | None = None
        self._total_from: str | None = None
        self._buffer = SampleBuffer()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @classmethod
    def available(cls, root: str | Path = "/", interval_ms: int = 100, total_rail: str | None = None) -> tuple[bool, str]:
        """Whether INA3221 rails exist under `root` and can be read."""
        try:
            meter = cls(root=root, interval_ms=interval_ms, total_rail=total_rail)
            total = meter._sample()
        except EdgeBranchyError as e:
            return False, str(e)
        if total == 0:
            return False, (f"INA3221 rails {', '.join(r.name for r in meter._rails or [])} read 0 mW "
                           "(sensors not powered or not exposed here): this source returns no power")
        rails = ", ".join(r.name for r in meter._rails or [])
        return True, f"rails {rails}; total from {meter._total_from}"

    def provenance(self) -> Provenance:
        return rail_provenance(self._total_from or self.total_rail, [r.name for r in self._rails or []],
                               self.interval_ms / 1000)

    def describe(self) -> dict:
        return {
            "source": self.name,
            "kind": self.kind,
            "provenance": self.provenance().to_dict(),
            "root": str(self.root),
            "interval_ms": self.interval_ms,
            "rails": [r.name for r in self._rails] if self._rails else None,
            "total_rail": self._total_from or self.total_rail,
        }

    def _sample(self) -> float:
        """Read every rail once and return the total (mW)."""
        if self._rails is None:
            try:
                rails = find_rails(self.root)
            except OSError as e:
                raise EdgeBranchyError(f"cannot list INA3221 rails under {self.root}: {e}") from None
            if not rails:
                raise EdgeBranchyError(
                    f"no INA3221 rails under {self.root / 'sys/bus/i2c/drivers'}/ina3221{{,x}}/ "
                    "(not a Jetson, or the sensors are not exposed in this container)"
                )
            self._rails = rails
        values = {}
        for rail in self._rails:
            try:
                values[rail.name] = rail.read_mw()
            except PermissionError as e:
                raise EdgeBranchyError(f"cannot read INA3221 rail {rail.name}: {e} (run as root?)") from None
            except (OSError, ValueError) as e:
                raise EdgeBranchyError(f"cannot read INA3221 rail {rail.name}: {e}") from None
        total, self._total_from = total_power_mw(values, self.total_rail)
        return total

    def _run(self, period: float) -> None:
        try:
            while not self._halt.wait(period):
                mw = self._sample()
                self._buffer.add(time.perf_counter(), mw)
        except BaseException as e:  # reported by stop()
            self._error = e

    def start(self) -> None:
        self._buffer = SampleBuffer()
        self._error = None
        self._halt.clear()
        mw = self._sample()
        self._buffer.add(time.perf_counter(), mw)
        self._open_window()
        self._thread = threading.Thread(
            target=self._run, args=(self.interval_ms / 1000,), name="ina3221-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> EnergyReading:
        t0, t1 = self._close_window()
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err = self._error
            raise EdgeBranchyError(f"INA3221 sampling failed during the window: {err}") from None
        mw = self._sample()
        self._buffer.add(time.perf_counter(), mw)
        times, powers = self._buffer.snapshot()
        joules, inside = integrate_mw(times, powers, t0, t1)
        return self._reading(joules, t1 - t0, inside)

    def close(self) -> None:
        """Stop the sampling thread if a window is open."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._t_start = None
