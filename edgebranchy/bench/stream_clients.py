"""The clients of `bench --streams`: N cameras, each a thread or a process with its own runner, sending batch-1
requests back to back or at a fixed rate, all starting each measurement window together.

A client opens its runner (its own ONNX Runtime sessions, `threads` intra-op threads each, no spinning unless
asked), warms both variants up, then for every trial and variant (baseline, branchy, interleaved) waits at the
barrier shared by all clients and sends requests for `seconds`. Back to back, a request is sent when the last
answer came; at a fixed `rate` (requests per second per stream) request i is due at start + i / rate and its
latency is counted from that moment, so time spent queued behind a late answer is part of it (what a camera
sees). What a client measured goes back on a queue: per window its start and end (the monotonic clock, shared
by processes on one machine), the latencies in ms, and branchy's exit counts.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

VARIANTS = ("baseline", "branchy")


@dataclass(frozen=True)
class ClientJob:
    """What one client does (picklable: a process client gets it whole)."""

    index: int
    artifact: str
    backend: str
    options: dict
    samples: object        # numpy array of preprocessed samples, cycled from `offset`
    offset: int
    trials: int
    seconds: float
    rate: float | None     # requests per second per stream; None: back to back
    warmup: int            # calls per variant before the first window


def run_client(job: ClientJob, barrier, results) -> None:
    """Body of one client (thread or process): measure, then put ("ok", index, windows, info) or ("error", index,
    text) on `results`. The barrier is aborted on an error, so the other clients stop waiting."""
    try:
        results.put(("ok", job.index) + _measure(job, barrier))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001 - a broken barrier is already what we want
            pass
        results.put(("error", job.index, f"{type(e).__name__}: {e}", traceback.format_exc(limit=3)))


def _measure(job: ClientJob, barrier) -> tuple[list, dict]:
    from edgebranchy.runtime.runner import EarlyExitRunner

    x = job.samples
    n = len(x)
    items = [x[(job.offset + i) % n:(job.offset + i) % n + 1] for i in range(n)]
    with EarlyExitRunner(job.artifact, backend=job.backend, options=job.options) as runner:
        fns = {"baseline": runner.baseline, "branchy": runner.predict}
        for name in VARIANTS:
            for i in range(job.warmup):
                fns[name](items[i % n])
        info = {"form": runner.form_reason, "threads": runner.backend.threads_per_call}
        windows = []
        for trial in range(job.trials):
            for name in VARIANTS:
                before = list(runner.exit_counts)
                barrier.wait()
                start, end, lat = _window(fns[name], items, job.seconds, job.rate, trial * 7919 + job.index)
                exits = [a - b for a, b in zip(runner.exit_counts, before)] if name == "branchy" else None
                windows.append({"trial": trial, "variant": name, "start": start, "end": end, "latency_ms": lat,
                                "exit_counts": exits})
    return windows, info


def _window(fn, items: list, seconds: float, rate: float | None, first: int) -> tuple[float, float, list]:
    """Requests for `seconds` from now (at least one); (start, end of the last answer, latencies in ms)."""
    clock, lat = time.monotonic, []
    n = len(items)
    start = clock()
    stop = start + seconds
    i = 0
    while True:
        if rate is None:
            due = clock()
            if due >= stop and i:  # at least one request, even for a client the scheduler kept waiting
                break
        else:
            due = start + i / rate
            if due >= stop:
                break
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)
        fn(items[(first + i) % n])
        lat.append((clock() - due) * 1e3)
        i += 1
    return start, clock(), lat
