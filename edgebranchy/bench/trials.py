"""The measurement loop of `bench`: warm-up, interleaved trials with one energy window each, bare segment times."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from edgebranchy.measure.segment_timing import segment_timings

VARIANTS = ("baseline", "branchy")


@dataclass(frozen=True)
class TrialPlan:
    """How many trials, how long each energy window lasts, and how the branchy variant runs."""

    trials: int
    min_window_s: float
    pipelined: bool = False


@dataclass
class Measured:
    """What the trials gave: every trial record per variant, and the labels/exits of each variant's first pass."""

    trials: dict[str, list[dict]] = field(default_factory=lambda: {v: [] for v in VARIANTS})
    first: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    # waits for speculative work whose result was dropped, taken after each branchy call and kept out of its latency
    discarded_ms: list[float] = field(default_factory=list)


def _one_pass(runner, batches: Sequence[np.ndarray], variant: str, sync: Callable[[], None],
              discarded_ms: list[float] | None = None):
    """One pass: per-batch latency (ms), labels and exits (None for the baseline). The branchy answers are on
    the host when predict returns; what is still queued then is speculative work whose result was discarded:
    it is waited for outside the latency and, with `discarded_ms`, timed there."""
    lat, labels, exits = [], [], []
    for xb in batches:
        t0 = time.perf_counter_ns()
        if variant == "baseline":
            lab = runner.baseline(xb)
            sync()
            ex = None
        else:
            p = runner.predict(xb)
            lab, ex = p.labels, p.exits
        lat.append((time.perf_counter_ns() - t0) / 1e6)
        if ex is not None:
            t1 = time.perf_counter_ns()
            sync()
            if discarded_ms is not None and getattr(runner, "speculate", False):
                discarded_ms.append((time.perf_counter_ns() - t1) / 1e6)
        labels.append(lab)
        exits.append(ex)
    return lat, labels, exits


def _stream_pass(runner, batches: Sequence[np.ndarray], sync: Callable[[], None]):
    """One pipelined pass (throughput mode): per-batch latency is the pass time / batches."""
    t0 = time.perf_counter_ns()
    preds = list(runner.predict_stream(batches, pipelined=True))
    sync()
    per = (time.perf_counter_ns() - t0) / 1e6 / len(batches)
    return [per] * len(batches), [p.labels for p in preds], [p.exits for p in preds]


def warm_up(runner, batches: Sequence[np.ndarray], count: int, sync: Callable[[], None]) -> None:
    """Run both variants on the first `count` batches (at least one), so caches and thread pools are steady."""
    for name in VARIANTS:
        for xb in batches[: max(1, min(count, len(batches)))]:
            runner.baseline(xb) if name == "baseline" else runner.predict(xb)
    sync()


def run_trials(runner, batches: Sequence[np.ndarray], plan: TrialPlan, meter, idle_watts: float | None, *,
               sync: Callable[[], None], on_trial: Callable[[dict], None] | None = None,
               watch=None, done: Sequence[dict] | None = None) -> Measured:
    """Interleaved trials (baseline, branchy, baseline, ...), each one energy window of whole passes
    lasting at least `plan.min_window_s`; `on_trial(record)` is called as soon as each trial ends.
    `watch` (a `throttle.TrialWatch`) records the run conditions and wall-clock edges of each window.
    A reading flagged by its meter (window too short for the sensor) gets no per-inference figure.
    `done`: trial records already measured (a resumed bench); those trials are kept and not run again, and a
    variant with no new trial gets its labels and exits from one pass outside any window."""
    n = sum(len(b) for b in batches)
    out = Measured()
    have = set()
    for rec in sorted(done or [], key=lambda r: (r["trial"], VARIANTS.index(r["variant"]))):
        if rec["trial"] < plan.trials and (rec["trial"], rec["variant"]) not in have:
            have.add((rec["trial"], rec["variant"]))
            out.trials[rec["variant"]].append(rec)
    for t in range(plan.trials):
        for name in VARIANTS:
            if (t, name) in have:
                continue
            lat: list[float] = []
            passes = 0
            if watch is not None:
                watch.begin()
            meter.start()
            t0 = time.perf_counter()
            while True:
                if name == "branchy" and plan.pipelined:
                    pl, labels, exits = _stream_pass(runner, batches, sync)
                else:
                    pl, labels, exits = _one_pass(runner, batches, name, sync, out.discarded_ms)
                lat += pl
                passes += 1
                if name not in out.first:
                    out.first[name] = (np.concatenate(labels), None if exits[0] is None else np.concatenate(exits))
                if time.perf_counter() - t0 >= plan.min_window_s:
                    break
            reading = meter.stop()
            inferences = passes * n
            usable = reading.flag is None
            rec = {"type": "trial", "trial": t, "variant": name, "passes": passes, "inferences": inferences,
                   "latency_ms": lat, "energy": reading.to_dict(),
                   "energy_per_inference_mj": reading.joules / inferences * 1e3 if usable else None,
                   "dynamic_per_inference_mj": ((reading.joules - idle_watts * reading.seconds) / inferences * 1e3
                                                if usable and idle_watts is not None else None)}
            if watch is not None:
                watch.end(rec)
            out.trials[name].append(rec)
            if on_trial is not None:
                on_trial(rec)
    for name in VARIANTS:
        out.trials[name].sort(key=lambda r: r["trial"])
        if name not in out.first:  # every trial of it was kept from the log: answers are deterministic
            _, labels, exits = _one_pass(runner, batches, name, sync)
            out.first[name] = (np.concatenate(labels), None if exits[0] is None else np.concatenate(exits))
    return out


def segment_latencies(runner, xb: np.ndarray, repeats: int, sync: Callable[[], None]) -> list[float]:
    """Median time of each bare segment call (launch + entropy read-back) at the bench's batch size."""
    return [t["host_ms"] for t in segment_timings(runner.backend, runner.num_exits, xb, repeats, sync)]
