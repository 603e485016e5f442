"""What each candidate costs on the target: the measured latency of the prefix up to it and of an exit head on
its features, exported to ONNX and timed with ONNX Runtime at the user's batch size (MACs only where nothing can
run, and labelled so).

Every graph is timed in the same interleaved rounds (prefix of every candidate, every head, the whole model, one
after the other, then again), one intra-op thread, on this thread's CPU clock (what another job's time on the
core does not inflate); the median over rounds, in µs per call.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
from torch import nn

from edgebranchy.models.backbones import make_head
from edgebranchy.plan.features import prefix_module


def _graphs(model: nn.Module, names: Sequence[str], shapes: Sequence[tuple], kind: str, num_classes: int) -> dict:
    """{(what, name): module}: each candidate's prefix and head, and ("baseline", "") the whole model."""
    out = {("baseline", ""): model}
    for n, s in zip(names, shapes):
        out[("prefix", n)] = prefix_module(model, [n])
        out[("head", n)] = make_head(kind, tuple(s), num_classes)
    return out


def _inputs(key: tuple, x: np.ndarray, shapes: dict) -> np.ndarray:
    if key[0] != "head":
        return x
    rng = np.random.default_rng(0)
    return rng.standard_normal((len(x), *shapes[key[1]])).astype(np.float32)


def measured_costs(model: nn.Module, names: Sequence[str], shapes: Sequence[tuple], kind: str, num_classes: int,
                   x: np.ndarray, rounds: int = 15, min_ms: float = 20.0,
                   note: Callable[[str], None] = lambda s: None) -> dict:
    """Latency of every candidate's prefix and head and of the whole model on ONNX Runtime for input batch `x`."""
    import onnxruntime as ort
    import torch

    from edgebranchy.export.onnx import _export

    sh = dict(zip(names, [tuple(s) for s in shapes]))
    mods = _graphs(model, names, shapes, kind, num_classes)
    note(f"plan: exporting {len(mods)} graphs (prefix and head per candidate, the whole model) to ONNX")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
    calls, feeds = {}, {}
    for key, m in mods.items():
        inp = _inputs(key, x, sh)
        data = _export(m.eval(), torch.as_tensor(inp), ["y"])
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        calls[key], feeds[key] = sess, {sess.get_inputs()[0].name: inp}
    reps = {}
    for key, sess in calls.items():  # calls per round: about min_ms of work
        sess.run(None, feeds[key])
        t0 = time.perf_counter()
        sess.run(None, feeds[key])
        reps[key] = max(1, int(min_ms / 1e3 / max(time.perf_counter() - t0, 1e-6)))
    note(f"plan: timing {len(calls)} graphs at batch {len(x)}, {rounds} interleaved rounds")
    cpu = {k: [] for k in calls}
    for _ in range(rounds):
        for key, sess in calls.items():
            c0 = time.thread_time_ns()
            for _ in range(reps[key]):
                sess.run(None, feeds[key])
            cpu[key].append((time.thread_time_ns() - c0) / 1e3 / reps[key])
    med = {k: float(np.median(v)) for k, v in cpu.items()}
    return {"source": f"latency: ONNX Runtime {ort.__version__} CPU, one intra-op thread, batch {len(x)}, µs per "
                      f"call on the thread's CPU clock, median of {rounds} interleaved rounds",
            "unit": "us", "kind": "measured", "batch_size": int(len(x)), "baseline": med[("baseline", "")],
            "prefix": {n: med[("prefix", n)] for n in names}, "head": {n: med[("head", n)] for n in names}}


def mac_costs(model: nn.Module, names: Sequence[str], shapes: Sequence[tuple], kind: str, num_classes: int,
              input_shape: tuple, why: str) -> dict:
    """MACs counted per prefix and head (only where nothing can run: `why` says so in the source)."""
    from edgebranchy.models.summary import count_macs

    mods = _graphs(model, names, shapes, kind, num_classes)
    sh = dict(zip(names, shapes))
    m = {k: float(count_macs(v, tuple(sh[k[1]]) if k[0] == "head" else tuple(input_shape))[0])
         for k, v in mods.items()}
    return {"source": f"MACs counted, not measured ({why})", "unit": "macs", "kind": "macs", "batch_size": None,
            "baseline": m[("baseline", "")], "prefix": {n: m[("prefix", n)] for n in names},
            "head": {n: m[("head", n)] for n in names}}
