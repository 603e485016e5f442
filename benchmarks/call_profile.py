"""Where the microseconds of one batch-1 runner call go (ONNX Runtime, CPU).

Usage: python benchmarks/call_profile.py ARTIFACT [--samples 300] [--rounds 7]
Times, per sample and interleaved over rounds, each layer between a bare
session call and `EarlyExitRunner.predict`: ORT's public `run` vs the binding's
`run`, IOBinding with preallocated outputs, the entropy nodes (segment 0 with
and without them), the host-side pieces of the runner's batch-1 path, and the
single graph (thresholds as initializers vs inputs, label in the graph vs
numpy argmax). The artifact needs a single graph (`edgebranchy export`, or
`edgebranchy.export.single_graph.add_single_graph`). Prints Markdown.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from edgebranchy.data import load_dataset
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.runtime.runner import EarlyExitRunner


def timed(fns: dict, items, rounds: int) -> dict:
    """Median over interleaved rounds of the mean µs per item, per function: (thread CPU time, wall)."""
    res = {k: ([], []) for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            for it in items:
                fn(it)
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            res[k][0].append((c1 - c0) / 1e3 / len(items))
            res[k][1].append((w1 - w0) / 1e3 / len(items))
    return {k: (float(np.median(c)), float(np.median(w))) for k, (c, w) in res.items()}


def table(title: str, r: dict) -> None:
    print(f"\n## {title}\n\n| | µs, thread CPU time | µs, wall |\n|---|---|---|")
    for k, (c, w) in r.items():
        print(f"| {k} | {c:.2f} | {w:.2f} |")


def _session(path_or_bytes, initializers=None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    for n, v in (initializers or {}).items():
        so.add_initializer(n, v)
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir")
    a = ap.parse_args()
    import onnx
    import onnxruntime as ort

    from edgebranchy.export.single_graph import single_graph_bytes

    art = Artifact.load(a.artifact)
    x = art.preprocess(load_dataset(a.dataset, a.data_dir).test.x[:a.samples])
    singles = [np.ascontiguousarray(x[i:i + 1]) for i in range(len(x))]
    print(f"# Batch-1 call profile ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, onnxruntime "
          f"{ort.__version__}, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}; shared machine)\n")
    print(f"artifact {a.artifact} ({art.manifest['model']['name']}), {len(x)} test samples, "
          f"thresholds {art.thresholds}, {a.rounds} interleaved rounds, µs per sample (median of rounds)\n")

    seg = EarlyExitRunner(art, form="segments")
    b = seg.backend
    s0 = b.sessions[0]
    names0 = [o.name for o in s0.get_outputs()]
    inner = s0._sess

    # 1. segment 0 alone: ORT call layers and output handling
    io = s0.io_binding()
    xbuf = np.zeros_like(singles[0])
    io.bind_cpu_input("x", xbuf)
    outs = {o.name: np.zeros([1 if d in (None, "N") or isinstance(d, str) else d for d in o.shape], np.float32)
            for o in s0.get_outputs()}
    for n, arr in outs.items():
        io.bind_output(n, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
    ro = ort.RunOptions()

    def iob(xb):
        np.copyto(xbuf, xb)
        inner.run_with_iobinding(io._iobinding, ro)
        return outs["entropy"].item(0)

    def iob_public(xb):
        np.copyto(xbuf, xb)
        s0.run_with_iobinding(io, ro)
        return outs["entropy"].item(0)

    m0 = onnx.load(str(art.segment_file(0)))
    no_ent = onnx.utils.Extractor(m0).extract_model(["x"], [n for n in names0 if n != "entropy"])
    s_noent = _session(no_ent.SerializeToString())
    noent_names = [o.name for o in s_noent.get_outputs()]
    r = timed({
        "public InferenceSession.run": lambda xb: s0.run(names0, {"x": xb}),
        "binding run (the backend's batched calls)": lambda xb: inner.run(names0, {"x": xb}, None),
        "IOBinding, preallocated outputs (+ copy in)": iob,
        "IOBinding through the public InferenceSession.run_with_iobinding": iob_public,
        "backend.step_one (the batch-1 call: IOBinding, ort_bound.py)": lambda xb: b.step_one(0, xb)[2].item(0),
        "binding run, without the entropy nodes": lambda xb: s_noent._sess.run(noent_names, {"x": xb}, None),
        "backend.launch + entropy read": lambda xb: b.launch(0, xb).entropy().item(0),
    }, singles, a.rounds)
    table("Segment 0 per call", r)
    lg = inner.run(names0, {"x": singles[0]}, None)[names0.index("logits")]
    ent = lambda z: float(-(np.exp(z - z.max()) / np.exp(z - z.max()).sum() * (z - z.max() - np.log(  # noqa: E731
        np.exp(z - z.max()).sum()))).sum())
    r = timed({
        "check_input": art.check_input,
        "logits.argmax() (numpy)": lambda _: lg.argmax(),
        "entropy in numpy on the host (10 logits)": lambda _: ent(lg),
        "Prediction(3 x np.array)": lambda _: (np.array([1], np.int64), np.array([0], np.int64),
                                               np.array([0.5], np.float32)),
    }, singles, a.rounds)
    table("Host-side pieces of the batch-1 path", r)

    # 2. whole samples: runner forms, bare chains, threshold modes
    one = EarlyExitRunner(art, form="single-graph")
    sb = one.backend
    srun, snames = sb._single
    inp_bytes = single_graph_bytes(art, threshold_mode="input")
    s_inp = _session(inp_bytes)
    s_ng = _session(single_graph_bytes(art, guard=False))
    tfeed = {f"threshold_{k}": np.array(t, np.float32) for k, t in enumerate(art.thresholds)}
    exits = seg.predict(x).exits

    def chain(xb):
        h = xb
        for k in range(seg.num_exits):
            o = b.run_segment(k, h)
            if k == seg.num_exits - 1 or o[b._idx[k][2]].item(0) < seg.thresholds[k]:
                return
            h = o[b._idx[k][0]]

    def step_chain(xb):
        h = xb
        for k in range(seg.num_exits):
            h, _, ent = b.step_one(k, h)
            if k == seg.num_exits - 1 or ent.item(0) < seg.thresholds[k]:
                return

    b.run_baseline(singles[0])  # opens the baseline session (b._baseline: its plain binding run)
    for e in range(seg.num_exits):
        items = [xb for xb, ex in zip(singles, exits) if ex == e]
        if not items:
            continue
        r = timed({
            "runner, segments": seg.predict,
            "bare segment chain (binding runs + host decision)": chain,
            "bare segment chain (backend.step_one, the runner's calls)": step_chain,
            "runner, single graph": one.predict,
            "bare single-graph call, thresholds as initializers": lambda xb: srun(snames, {"x": xb}),
            "bare single-graph call, thresholds as inputs": lambda xb: s_inp._sess.run(snames, {"x": xb, **tfeed},
                                                                                       None),
            "bare single-graph call, no finiteness guard": lambda xb: s_ng._sess.run(snames, {"x": xb}, None),
            "baseline.onnx (binding run)": lambda xb: b._baseline(["logits"], {"x": xb})[0],
            "baseline.onnx (backend.run_baseline: IOBinding at batch 1)": b.run_baseline,
        }, items, a.rounds)
        table(f"Samples that leave at exit {e} ({len(items)} of {len(singles)})", r)
    seg.close()
    one.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
