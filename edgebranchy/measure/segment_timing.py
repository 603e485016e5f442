"""Bare segment calls timed one by one: what each segment costs on a backend at a batch size (bench's
per-segment latencies, `doctor ARTIFACT`'s per-segment latency)."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def segment_timings(b, num_exits: int, xb: np.ndarray, repeats: int, sync: Callable[[], None]) -> list[dict]:
    """Per segment, the median of `repeats` bare calls on backend `b` (launch + entropy read-back) as seen by
    the host (`host_ms`) and, where the backend times its own work (`Launch.timing`, CUDA events), `gpu_ms`."""
    out = []
    inp = b.to_device(xb)
    for k in range(num_exits):
        times, gpu = [], []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            launch = b.launch(k, inp, 0)
            launch.entropy()
            sync()
            times.append((time.perf_counter_ns() - t0) / 1e6)
            if "gpu_ms" in launch.timing:
                gpu.append(launch.timing["gpu_ms"])
        out.append({"host_ms": float(np.median(times)), "gpu_ms": float(np.median(gpu)) if gpu else None})
        inp = launch.features
    return out
