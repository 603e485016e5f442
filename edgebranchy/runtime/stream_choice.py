"""Which way `predict_stream` should run a stream here, measured: sequential, pipelined, concurrent.

Overlap pays only where it measures faster: on a small CPU the pipeline's threads (one per segment, segments of
unequal cost) can lose to running the batches one after another (benchmarks/results/stream_modes.md), while
independent batches on as many workers as there are CPUs keep every core busy. Each mode the runner can run
is timed on the same batches, rounds interleaved; sequential stays unless another is faster.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError


def candidate_modes(runner, workers: int) -> list[str]:
    """The modes worth timing on this runner: pipelined needs two segments, concurrent two workers and a backend
    that takes calls from several threads."""
    modes = ["sequential"]
    if runner.num_exits > 1:
        modes.append("pipelined")
    if workers > 1 and runner.backend.concurrent_calls:
        modes.append("concurrent")
    return modes


def choose_stream(runner, batches: Sequence[np.ndarray], rounds: int = 3, workers: int | None = None) -> dict:
    """{"<mode>_us": median µs per sample, ..., "choice", "workers", "batches", "rounds", "reason"}."""
    if len(batches) < 2:
        raise EdgeBranchyError("choose_stream needs at least two batches (a stream)")
    workers = workers or runner.stream_workers()
    modes = candidate_modes(runner, workers)
    n = sum(len(b) for b in batches)
    for mode in modes:  # warm-up: sessions, bindings and worker threads
        for _ in runner.predict_stream(batches[:max(2, workers)], mode=mode, workers=workers):
            pass
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(max(1, rounds)):
        for mode in modes:
            t0 = time.perf_counter_ns()
            for _p in runner.predict_stream(batches, mode=mode, workers=workers):
                pass
            times[mode].append((time.perf_counter_ns() - t0) / 1e3 / n)
    rec, figures = _fastest(times)
    rec.update(workers=workers, batches=len(batches), samples=n, rounds=max(1, rounds),
               reason=f"measured: {figures} us per sample ({workers} workers) -> {rec['choice']}")
    return rec


def _fastest(times: dict) -> tuple[dict, str]:
    """({"<mode>_us": median µs per sample, ..., "choice"}, the figures as text) from each mode's timings; ties and
    sequential: sequential stays."""
    med = {m: float(np.median(v)) for m, v in times.items()}
    rec: dict = {f"{m}_us": med[m] for m in times}
    rec["choice"] = min(times, key=lambda m: (med[m], m != "sequential"))
    return rec, ", ".join(f"{m} {med[m]:.1f}" for m in times)


def answer_while_measuring(runner, batches: Sequence[np.ndarray], rounds: int = 2, most: int = 8,
                           workers: int | None = None) -> tuple[list, dict]:
    """Answer every batch once, in order, choosing the mode on the way: the first batches are answered in turns
    of each mode (`rounds` turns per mode, interleaved, each on its own consecutive batches, `most` at a time),
    and the rest in the mode whose turns took the least time per sample. Nothing is computed twice, so the
    exit counts stay those of the stream. Each turn takes at most half the stream's share (a short stream gets
    short turns; below 2 batches per turn, sequential throughout). Returns (predictions in order, the record
    `choose_stream` returns, with "measured_on": "the stream's own batches")."""
    workers = workers or runner.stream_workers()
    modes = candidate_modes(runner, workers)
    batches = list(batches)
    n = sum(len(b) for b in batches)
    turn = min(most, len(batches) // (2 * len(modes) * max(1, rounds)))
    if len(modes) == 1 or turn < 2:
        why = "one mode runs here" if len(modes) == 1 else f"{len(batches)} batches: too few to time the modes on"
        rec = {"choice": "sequential", "workers": workers, "batches": 0, "samples": n, "rounds": 0,
               "reason": why, "measured_on": "the stream's own batches"}
        return list(runner.predict_stream(batches, mode="sequential")), rec
    preds: list = []
    times: dict[str, list[float]] = {m: [] for m in modes}
    at = 0
    for _ in range(max(1, rounds)):
        for mode in modes:
            part = batches[at:at + turn]
            t0 = time.perf_counter_ns()
            preds += list(runner.predict_stream(part, mode=mode, workers=workers))
            times[mode].append((time.perf_counter_ns() - t0) / 1e3 / sum(len(b) for b in part))
            at += turn
    rec, figures = _fastest(times)
    choice = rec["choice"]
    preds += list(runner.predict_stream(batches[at:], mode=choice, workers=workers))
    rec.update(workers=workers, batches=at, samples=n, rounds=max(1, rounds),
               measured_on="the stream's own batches",
               reason=f"measured on the first {at} batches, {turn} per turn: {figures} us per sample ({workers} "
                      f"workers) -> {choice}")
    runner.stream_mode, runner.stream_reason = choice, rec["reason"]
    return preds, rec
