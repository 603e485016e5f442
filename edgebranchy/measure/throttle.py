"""Was a trial throttled? Compare the run conditions read at its start and its end.

A trial is flagged throttled, with every reason, when

- a thermal zone read at the start or the end is at or above one of its own
  passive, hot or critical trip points (active trips only switch fans on);
- a clock cap went down: a CPU's `scaling_max_freq` or a devfreq device's
  `max_freq` (thermal cooling devices and power capping lower these);
- a clock that was locked at the start (min == max) runs more than
  `drop_tolerance` below where it started. Under a dynamic governor the
  current clock moves with load by design, so it alone is not evidence.
"""
from __future__ import annotations

from typing import Iterable

THROTTLING_TRIPS = ("passive", "hot", "critical")


def _zone_reasons(snap: dict, when: str) -> Iterable[str]:
    for z in snap.get("thermal", []):
        t = z.get("temp_c")
        if t is None:
            continue
        for trip in z.get("trips", []):
            if trip.get("type") in THROTTLING_TRIPS and trip.get("temp_c") is not None and t >= trip["temp_c"]:
                yield (f"thermal zone {z.get('type') or z['zone']} at {t:.1f} C {when} passed its "
                       f"{trip['type']} trip point {trip['temp_c']:.1f} C")
                break


def _clock_reasons(name: str, a: dict, b: dict, unit: str, drop_tolerance: float) -> Iterable[str]:
    mx0, mx1 = a.get(f"max_{unit}"), b.get(f"max_{unit}")
    if mx0 is not None and mx1 is not None and mx1 < mx0:
        yield f"{name} clock cap lowered from {mx0} to {mx1} {unit[:-1]}Hz during the trial"
    cur0, cur1, mn0 = a.get(f"cur_{unit}"), b.get(f"cur_{unit}"), a.get(f"min_{unit}")
    locked = mn0 is not None and mn0 == mx0
    if locked and cur0 and cur1 is not None and cur1 < cur0 * (1 - drop_tolerance):
        yield f"locked {name} clock dropped from {cur0} to {cur1} {unit[:-1]}Hz during the trial"


def throttle_reasons(start: dict, end: dict, drop_tolerance: float = 0.10) -> list[str]:
    """Why the trial between snapshots `start` and `end` counts as throttled (empty: it does not)."""
    reasons = list(_zone_reasons(start, "at the start")) + list(_zone_reasons(end, "at the end"))
    cpus0 = {c["cpu"]: c for c in start.get("cpus", [])}
    for c in end.get("cpus", []):
        if c["cpu"] in cpus0:
            reasons += _clock_reasons(c["cpu"], cpus0[c["cpu"]], c, "khz", drop_tolerance)
    dev0 = {d["name"]: d for d in start.get("gpu", []) + start.get("devfreq_other", [])}
    for d in end.get("gpu", []) + end.get("devfreq_other", []):
        if d["name"] in dev0:
            reasons += _clock_reasons(d["name"], dev0[d["name"]], d, "hz", drop_tolerance)
    return reasons


def hottest(snap: dict) -> float | None:
    """The highest zone temperature of a snapshot (C), or None without readable zones."""
    temps = [z["temp_c"] for z in snap.get("thermal", []) if z.get("temp_c") is not None]
    return max(temps) if temps else None


def trial_conditions(start: dict, end: dict, drop_tolerance: float = 0.10) -> dict:
    """The per-trial record: throttled flag, reasons, hottest zone and lowest CPU clock at each end."""
    reasons = throttle_reasons(start, end, drop_tolerance)

    def slowest(s: dict) -> int | None:
        v = [c["cur_khz"] for c in s.get("cpus", []) if c.get("cur_khz") is not None]
        return min(v) if v else None

    return {"throttled": bool(reasons), "reasons": reasons,
            "hottest_c": [hottest(start), hottest(end)], "slowest_cpu_khz": [slowest(start), slowest(end)],
            "gpu_hz": [[g.get("cur_hz") for g in start.get("gpu", [])], [g.get("cur_hz") for g in end.get("gpu", [])]]}


class TrialWatch:
    """Around each trial: run conditions at both ends, the window's wall-clock edges, an optional idle gap.

    `begin()` just before the energy window opens, `end(record)` just after it
    closes; the record gets `window` (Unix seconds, for external meters) and
    `conditions` (snapshots at both ends, throttled flag and reasons).
    """

    def __init__(self, reader=None, drop_tolerance: float = 0.10, gap_s: float = 0.0) -> None:
        self.reader = reader  # a conditions.ConditionsReader, or None to record the window edges only
        self.drop_tolerance = drop_tolerance
        self.gap_s = gap_s
        self._start: dict | None = None
        self._t0: float | None = None

    def begin(self) -> None:
        import time

        self._start = self.reader.read(tools=False) if self.reader is not None else None
        self._t0 = time.time()

    def end(self, rec: dict) -> None:
        import time

        t1 = time.time()
        rec["window"] = {"start_unix": self._t0, "end_unix": t1}
        if self.reader is not None and self._start is not None:
            end = self.reader.read(tools=False)
            rec["conditions"] = {**trial_conditions(self._start, end, self.drop_tolerance),
                                 "start": self._start, "end": end}
        if self.gap_s > 0:
            time.sleep(self.gap_s)  # idle between windows: edges an external meter can be aligned on
