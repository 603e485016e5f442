"""Precision "auto": the int8 graphs only where they measured faster than the fp32 ones on this backend.

As form "auto" takes the single graph only where a measurement shows it faster, `choose_precision` times the
early-exit runner at batch 1 on fp32 and on int8 graphs (rounds interleaved, each precision with its own
thresholds) and records the figures and the choice in the manifest (`quantization.measured[backend]`);
`auto_precision` reads that record. Without a measurement, or where int8 was not faster (tiny segments, where
the Q/DQ pairs cost more than the int8 arithmetic saves, or a CPU without VNNI), "auto" keeps fp32
(artifact/precision_record.py reads the record; the runner resolves "auto" with it).
"""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np

from edgebranchy.artifact.precision_record import FP32, INT8
from edgebranchy.errors import EdgeBranchyError


def choose_precision(artifact: Any, samples: np.ndarray, backend: str = "onnxruntime",
                     options: Optional[dict] = None, rounds: int = 5, record: bool = True) -> dict:
    """Time the runner at batch 1 on `samples` (normalised, N x C x H x W) with fp32 and with int8 graphs, rounds
    interleaved; with `record`, keep the figures and the choice in the artifact's manifest. Returns them."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.runtime.runner import EarlyExitRunner

    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    if not art.manifest.get("quantization"):
        raise EdgeBranchyError(f"{art.root} has no int8 graphs: export it with `precision` int8")
    singles = [art.check_input(samples[i:i + 1]) for i in range(len(samples))]
    if not singles:
        raise EdgeBranchyError("choose_precision needs at least one sample")
    runners = {p: EarlyExitRunner(art, backend=backend, options={**(options or {}), "precision": p},
                                  form="segments") for p in (FP32, INT8)}
    try:
        for r in runners.values():  # warm-up
            for xb in singles[:20]:
                r.predict(xb)
        times: dict = {p: [] for p in runners}
        for _ in range(max(1, rounds)):
            for p, r in runners.items():
                t0 = time.perf_counter_ns()
                for xb in singles:
                    r.predict(xb)
                times[p].append((time.perf_counter_ns() - t0) / 1e3 / len(singles))
    finally:
        for r in runners.values():
            r.close()
    fp32, int8 = float(np.median(times[FP32])), float(np.median(times[INT8]))
    rec = {"fp32_us": fp32, "int8_us": int8, "choice": INT8 if int8 < fp32 else FP32, "samples": len(singles),
           "rounds": max(1, rounds), "form": "segments", "batch": 1}
    if record:
        q = dict(art.manifest["quantization"])
        q["measured"] = {**(q.get("measured") or {}), backend: rec}
        art.add_files([], {"quantization": q})
    return rec
