"""Jetson power from the `tegrastats` tool: a line parser and a meter around the running tool.

Grammar of a power rail on a tegrastats line: a token NAME (a letter, then
letters, digits or `_`) followed by a token of two or three `/`-separated
values, each an optionally signed decimal number, all bare (JetPack 4) or all
ending in `mW` (JetPack 5+). The first value is the current reading. Nothing
else on the line has that shape: memory fields carry `MB`/`kB` units (and
their names RAM, SWAP, IRAM are excluded outright), CPU loads sit in
brackets, clocks use `%@`, temperatures `name@valueC`, engine clocks a single
number. `NC` marks an unconnected channel and is skipped.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass

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

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*", re.ASCII)
_VALUE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(mW)?", re.ASCII)
_DATE = re.compile(r"[0-9]{2}-[0-9]{2}-[0-9]{4}", re.ASCII)
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
#: Fields with `a/b` values that are not rails (their units already rule them out).
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM", "lfb", "cached"})
_SHOW = 160
_GIVE_UP_AFTER = 3  # lines without rails before the start is declared failed


@dataclass(frozen=True)
class TegrastatsSample:
    """The power part of one tegrastats line."""

    rails_mw: dict[str, float]  # connected rail -> current reading (mW)
    total_mw: float
    total_rail: str  # the rail the total came from, or "sum"
    timestamp: str | None = None  # the line's own time stamp (1 s resolution), if printed


def _shown(line: str) -> str:
    return repr(line if len(line) <= _SHOW else line[: _SHOW - 3] + "...")


def _rail_value(token: str) -> float | None:
    """The current reading of a rail value token, or None when the token is not one."""
    parts = token.split("/")
    if len(parts) not in (2, 3):
        return None
    matches = [_VALUE.fullmatch(p) for p in parts]
    if not all(matches):
        return None
    units = {m.group(2) for m in matches}
    if len(units) != 1:  # mixed "123/456mW": not something tegrastats prints
        return None
    return float(matches[0].group(1))


def parse_line(line: str, total_rail: str | None = None) -> TegrastatsSample:
    """Parse the power rails of one tegrastats line and total them.

    `total_rail` None uses the Jetson rule (VIN > POM_5V_IN > VDD_IN > sum of
    connected rails); see `base.total_power_mw`. Raises EdgeBranchyError for a
    line with no rails.
    """
    if not isinstance(line, str):
        raise EdgeBranchyError(f"tegrastats line must be text, got {type(line).__name__}")
    tokens = line.split()
    timestamp = None
    if len(tokens) >= 2 and _DATE.fullmatch(tokens[0]) and _TIME.fullmatch(tokens[1]):
        timestamp = f"{tokens[0]} {tokens[1]}"
        tokens = tokens[2:]
    rails: dict[str, float] = {}
    i = 0
    while i < len(tokens) - 1:
        name = tokens[i]
        if _NAME.fullmatch(name) and name not in _NOT_RAILS:
            value = _rail_value(tokens[i + 1])
            if value is not None:
                if not math.isfinite(value):
                    raise EdgeBranchyError(f"rail {name} has a non-finite value in tegrastats line {_shown(line)}")
                if name != UNCONNECTED:
                    key, k = name, 2
                    while key in rails:  # a repeated name keeps every reading
                        key, k = f"{name}#{k}", k + 1
                    rails[key] = value
                i += 2
                continue
        i += 1
    if not rails:
        raise EdgeBranchyError(
            f"no power rails in tegrastats line {_shown(line)} "
            "(some boards show rails only when tegrastats runs as root)"
        )
    try:
        total, which = total_power_mw(rails, total_rail)
    except EdgeBranchyError as e:
        raise EdgeBranchyError(f"{e} in tegrastats line {_shown(line)}") from None
    return TegrastatsSample(rails_mw=rails, total_mw=total, total_rail=which, timestamp=timestamp)


def _terminate(proc: subprocess.Popen) -> None:
    """Stop a tegrastats child (also run at exit for a meter that was never closed)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TegrastatsMeter(PowerMeter):
    """Jetson module power from a running `tegrastats --interval MS`.

    Each line is stamped with perf_counter when it is read; a window's energy
    is the trapezoid integral of the total rail over the stamped samples.
    `stop()` waits for the first line after the window end so the edge is
    interpolated rather than extrapolated.
    """

    name = "tegrastats"
    kind = "measured"

    def __init__(
        self,
        interval_ms: int = 100,
        executable: str = "tegrastats",
        total_rail: str | None = None,
        startup_timeout_s: float = 5.0,
    ) -> None:
        if not is_int_at_least(interval_ms, 1):
            raise EdgeBranchyError(f"tegrastats interval must be an integer >= 1 ms, got {interval_ms!r}")
        self.interval_ms = interval_ms
        self.executable = executable
        self.total_rail = total_rail
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._buffer = SampleBuffer()
        self._rejected: deque[str] = deque(maxlen=3)
        self._n_rejected = 0
        self._last: TegrastatsSample | None = None
        self._reaper: weakref.finalize | None = None

    @classmethod
    def available(
        cls,
        interval_ms: int = 100,
        executable: str = "tegrastats",
        total_rail: str | None = None,
        probe: bool = False,
    ) -> tuple[bool, str]:
        """Whether tegrastats is on PATH; with `probe`, also run it until it prints a line with rails."""
        path = shutil.which(executable)
        if path is None:
            return False, f"{executable!r} not found on PATH (not a Jetson, or JetPack tools not installed)"
        if not probe:
            return True, f"found {path}"
        try:
            meter = cls(interval_ms=interval_ms, executable=executable, total_rail=total_rail)
            try:
                meter._ensure_running()
                s = meter._last
            finally:
                meter.close()
        except EdgeBranchyError as e:
            return False, str(e)
        rails = ", ".join(s.rails_mw) if s else "?"
        if s is not None and s.total_mw == 0:
            return False, f"{path} prints rails {rails} but they read 0 mW: this source returns no power"
        return True, f"{path} prints rails {rails}; total from {s.total_rail if s else '?'}"

    def provenance(self) -> Provenance:
        total = self._last.total_rail if self._last else self.total_rail
        return rail_provenance(total, list(self._last.rails_mw) if self._last else None, self.interval_ms / 1000)

    def describe(self) -> dict:
        return {
            "source": self.name,
            "kind": self.kind,
            "provenance": self.provenance().to_dict(),
            "executable": self.executable,
            "interval_ms": self.interval_ms,
            "total_rail": self._last.total_rail if self._last else self.total_rail,
            "rails": list(self._last.rails_mw) if self._last else None,
        }

    def _ensure_running(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                return
            raise EdgeBranchyError(f"tegrastats exited (status {self._proc.returncode}){self._why()}")
        path = shutil.which(self.executable)
        if path is None:
            raise EdgeBranchyError(
                f"{self.executable!r} not found on PATH (not a Jetson, or JetPack tools not installed); "
                "choose another power source, e.g. `power` estimate"
            )
        try:
            self._proc = subprocess.Popen(
                [path, "--interval", str(self.interval_ms)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as e:
            raise EdgeBranchyError(f"cannot run {path}: {e}") from None
        self._reaper = weakref.finalize(self, _terminate, self._proc)
        self._buffer = SampleBuffer()
        self._rejected.clear()
        self._n_rejected = 0
        self._thread = threading.Thread(target=self._read, name="tegrastats-reader", daemon=True)
        self._thread.start()
        # Wait for the first line with rails; give up early after a few lines without any.
        deadline = time.monotonic() + max(self.startup_timeout_s, 3 * self.interval_ms / 1000)
        while not self._buffer.wait_for_sample_after(float("-inf"), 0.02):
            status = self._proc.poll()
            if self._buffer.closed or self._n_rejected >= _GIVE_UP_AFTER or time.monotonic() > deadline:
                self.close()
                if status is not None:
                    state = f"exited with status {status}"
                elif self._n_rejected:
                    state = f"printed {self._n_rejected} line(s) without power rails"
                else:
                    state = "printed nothing"
                raise EdgeBranchyError(f"tegrastats {state}{self._why()}")

    def _why(self) -> str:
        return f"; last output: {' | '.join(self._rejected)}" if self._rejected else ""

    def _read(self) -> None:
        proc, buffer = self._proc, self._buffer
        if proc is None or proc.stdout is None:
            return
        try:
            for raw in proc.stdout:
                t = time.perf_counter()
                line = raw.strip()
                if not line:
                    continue
                try:
                    sample = parse_line(line, self.total_rail)
                except EdgeBranchyError as e:
                    self._rejected.append(str(e))
                    self._n_rejected += 1
                    continue
                self._last = sample
                buffer.add(t, sample.total_mw)
        except (OSError, ValueError):  # pipe closed under us by close()
            pass
        finally:
            buffer.close()

    def start(self) -> None:
        self._ensure_running()
        self._open_window()

    def stop(self) -> EnergyReading:
        t0, t1 = self._close_window()
        wait = 3 * self.interval_ms / 1000 + 1.0
        if not self._buffer.wait_for_sample_after(t1, wait):
            status = self._proc.poll() if self._proc else None
            if status is not None or self._buffer.closed:
                raise EdgeBranchyError(f"tegrastats stopped during the window (status {status}){self._why()}")
            raise EdgeBranchyError(f"tegrastats printed no line within {wait:.1f} s after the window{self._why()}")
        times, powers = self._buffer.snapshot()
        joules, inside = integrate_mw(times, powers, t0, t1)
        self._buffer.drop_before(t1)
        return self._reading(joules, t1 - t0, inside)

    def close(self) -> None:
        """Stop the tegrastats process and its reader thread."""
        proc, self._proc = self._proc, None
        self._t_start = None
        if proc is None:
            return
        if self._reaper is not None:
            self._reaper.detach()
            self._reaper = None
        _terminate(proc)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if proc.stdout is not None:
            proc.stdout.close()
