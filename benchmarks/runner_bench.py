"""Runner benchmarks on ONNX Runtime (CPU): overhead, no-exit cost, early-exit gain, batched throughput.

Usage: python benchmarks/runner_bench.py ARTIFACT [ARTIFACT ...] [--samples 1000] [--rounds 5]
Every ratio is measured within one run, rounds interleaved (baseline, branchy, ...),
on the artifact's own test data (Fashion-MNIST). Prints Markdown; the recorded
output lives in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from edgebranchy.data import load_dataset
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.runtime.runner import EarlyExitRunner


def per_call_us(fn, items, rounds: int) -> float:
    """Median over rounds of the mean time per item, in microseconds."""
    res = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for it in items:
            fn(it)
        res.append((time.perf_counter_ns() - t0) / 1e3 / len(items))
    return float(np.median(res))


def interleaved(fns: dict, items, rounds: int) -> dict:
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            out[k].append(per_call_us(fn, items, 1))
    return {k: float(np.median(v)) for k, v in out.items()}


def bench_artifact(path: str, samples: int, rounds: int, dataset: str) -> None:
    art = Artifact.load(path)
    data = load_dataset(dataset)
    x = art.preprocess(data.test.x[:samples])
    singles = [x[i:i + 1] for i in range(len(x))]
    r = EarlyExitRunner(art, form="segments")
    b = r.backend
    K = r.num_exits
    name = art.manifest["model"]["name"] + str(art.manifest["model"].get("args", {}).get("depth", ""))
    print(f"\n## {name} ({path}), {samples} test samples, thresholds {r.thresholds}")
    print(f"backend settings: {b.describe()['options']}")
    for xb in singles[:100]:
        r.predict(xb), r.baseline(xb)

    # exits and the bare session calls the runner makes for each sample
    preds = r.predict(x)
    frac = np.bincount(preds.exits, minlength=K) / len(x)
    # the bare session calls the runner makes for each sample: the same chain of segments, fresh features
    paths = [(xb, int(e) + 1) for xb, e in zip(singles, preds.exits)]

    def bare(item):
        h, n_seg = item
        for k in range(n_seg):
            h = b.run_segment(k, h)[0]

    feats = paths
    res = {"runner": [], "bare": [], "baseline": []}
    for _ in range(rounds * 3):  # many short interleaved rounds: the machine's noise drifts
        res["runner"].append(per_call_us(r.predict, singles, 1))
        res["bare"].append(per_call_us(bare, feats, 1))
        res["baseline"].append(per_call_us(r.baseline, singles, 1))
    med = {k: float(np.median(v)) for k, v in res.items()}
    calls = sum(n for _, n in paths) / len(paths)
    overhead = (med["runner"] - med["bare"]) / calls
    print(f"\n1. runner overhead at batch 1: runner {med['runner']:.1f} us/sample, bare session calls "
          f"{med['bare']:.1f} us/sample, {calls:.3f} segment calls/sample -> **{overhead:.1f} us per segment** "
          f"(target < 10)")

    # 2. no exit: everything runs every segment
    r0 = EarlyExitRunner(art, thresholds=[0.0] * (K - 1))
    for xb in singles[:100]:
        r0.predict(xb)
    m = interleaved({"no-exit": r0.predict, "baseline": r.baseline}, singles, rounds)
    print(f"2. no-exit overhead: split pipeline {m['no-exit']:.1f} us vs baseline.onnx {m['baseline']:.1f} us -> "
          f"**{(m['no-exit'] / m['baseline'] - 1) * 100:+.1f}%** (target within 10%)")
    r0.close()

    # 3. early-exit gain at batch 1, expected from bare segment latencies and exit fractions
    seg_us = []
    h = singles[0]
    for k in range(K):
        seg_us.append(per_call_us(lambda xb, k=k: b.run_segment(k, xb), [h] * 500, rounds))
        h = b.run_segment(k, h)[0]
    reach = np.cumsum(seg_us)
    expected = float(np.sum(frac * reach))
    m = interleaved({"branchy": r.predict, "baseline": r.baseline}, singles, rounds)
    speed = m["baseline"] / m["branchy"]
    exp_speed = m["baseline"] / expected
    macs = [s["macs"] for s in art.manifest["segments"]]
    mac_ideal = art.manifest["baseline"]["macs"] / float(np.sum(frac * np.cumsum(macs)))
    print(f"3. early-exit gain at batch 1: exits {', '.join(f'{f * 100:.1f}%' for f in frac)}; bare segments "
          f"{', '.join(f'{s:.1f}' for s in seg_us)} us; baseline {m['baseline']:.1f} us, branchy "
          f"{m['branchy']:.1f} us -> **{speed:.2f}x** measured; {exp_speed:.2f}x expected from segment latencies "
          f"(ratio **{speed / exp_speed:.2f}**, target >= 0.9); MAC-implied ideal {mac_ideal:.2f}x "
          f"(segment 0 is {macs[0] / art.manifest['baseline']['macs'] * 100:.0f}% of the baseline MACs but "
          f"{seg_us[0] / m['baseline'] * 100:.0f}% of its time)")

    # 3b. the single graph (one call per sample, exit decision inside) against the segments, batch 1
    if r.single_graph_available:
        one = EarlyExitRunner(art, form="single-graph")
        srun, snames = one.backend._single
        for xb in singles[:100]:
            one.predict(xb)
        m1 = interleaved({"segments": r.predict, "single": one.predict,
                          "bare single": lambda xb: srun(snames, {"x": xb}), "baseline": r.baseline}, singles, rounds)
        print(f"3b. single graph at batch 1: {m1['single']:.1f} us/sample (bare call {m1['bare single']:.1f}) vs "
              f"segments {m1['segments']:.1f} us vs baseline {m1['baseline']:.1f} us -> gain **"
              f"{m1['baseline'] / m1['single']:.2f}x** single graph, {m1['baseline'] / m1['segments']:.2f}x segments")
        one.close()
    else:
        print("3b. single graph: the artifact has none (re-export it)")

    # 4. batched throughput at 64 with compaction, and pipelining
    bx = [x[i:i + 64] for i in range(0, len(x) - 63, 64)]
    for xb in bx[:3]:
        r.predict(xb), r.baseline(xb)
    m = interleaved({"branchy": r.predict, "baseline": r.baseline}, bx, rounds)
    seq_t, pipe_t = [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        list(r.predict_stream(bx, pipelined=False))
        seq_t.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        list(r.predict_stream(bx, pipelined=True))
        pipe_t.append(time.perf_counter_ns() - t0)
    print(f"4. batch 64: baseline {m['baseline'] / 64:.1f} us/sample, branchy with compaction "
          f"{m['branchy'] / 64:.1f} us/sample -> **{m['baseline'] / m['branchy']:.2f}x** throughput; "
          f"predict_stream pipelined vs sequential: **{np.median(seq_t) / np.median(pipe_t):.2f}x**")
    r.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dataset", default="fashion-mnist")
    a = ap.parse_args()
    import onnxruntime
    import platform

    print(f"# Runner benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} CPUs, onnxruntime {onnxruntime.__version__})")
    for p in a.artifacts:
        bench_artifact(p, a.samples, a.rounds, a.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
