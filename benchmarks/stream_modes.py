"""predict_stream before and after: the old default (segments pipelined on threads) against running the batches one
after another, independent batches on worker threads, and what mode "auto" runs once `choose_stream` measured.

Usage: python benchmarks/stream_modes.py ARTIFACT [ARTIFACT ...] [--batch 64] [--samples 2048] [--rounds 5]
Wall clock per sample of the whole stream, median over interleaved rounds, one runner per artifact (ONNX Runtime,
its default options: 1 intra-op thread per session, no spinning). Prints Markdown.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.data.splits import artifact_test_data
from edgebranchy.runtime.runner import EarlyExitRunner
from edgebranchy.util.cpus import usable_cpus


def per_sample_us(runner, batches, mode: str) -> float:
    """Wall µs per sample of the whole stream in `mode`; "predict auto": what `predict --stream-mode auto` runs
    (answer_while_measuring: the modes timed on the stream's own first batches, the rest in the fastest)."""
    from edgebranchy.runtime.stream_choice import answer_while_measuring

    n = sum(len(b) for b in batches)
    t0 = time.perf_counter_ns()
    if mode == "predict auto":
        answer_while_measuring(runner, batches)
    else:
        for _p in runner.predict_stream(batches, mode=mode):
            pass
    return (time.perf_counter_ns() - t0) / 1e3 / n


def bench(path: str, batch: int, samples: int, rounds: int) -> None:
    art = Artifact.load(path)
    x = art.preprocess(artifact_test_data(art)[1].test.x[:samples])
    batches = [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)]
    with EarlyExitRunner(art) as r:
        rec = r.choose_stream(batches[:8], rounds=3)
        modes = ["sequential", "pipelined", "concurrent", "auto", "predict auto"]
        for m in modes[:4]:  # warm-up
            per_sample_us(r, batches[:4], m)
        t = {m: [] for m in modes}
        for _ in range(rounds):
            for m in modes:
                t[m].append(per_sample_us(r, batches, m))
                if m == "predict auto":  # it records its own choice: auto runs choose_stream's again
                    r.stream_mode = rec["choice"]
        med = {m: float(np.median(v)) for m, v in t.items()}
    name = art.manifest.get("model", {}).get("name", path)
    print(f"| {name} | {batch} | {med['sequential']:.1f} | {med['pipelined']:.1f} "
          f"({med['sequential'] / med['pipelined']:.2f}x) | {med['concurrent']:.1f} "
          f"({med['sequential'] / med['concurrent']:.2f}x, {rec['workers']} workers) | {rec['choice']} | "
          f"{med['auto']:.1f} ({med['sequential'] / med['auto']:.2f}x) | {med['predict auto']:.1f} "
          f"({med['sequential'] / med['predict auto']:.2f}x) |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    print(f"<!-- command: python benchmarks/stream_modes.py {' '.join(sys.argv[1:])} -->")
    print(f"# predict_stream modes ({time.strftime('%Y-%m-%d %H:%M')}, {usable_cpus().describe()}, "
          f"load average at start {os.getloadavg()[0]:.2f})\n")
    print("µs per sample, wall clock of the whole stream; (x) = speed over sequential. Before: predict_stream's "
          "default was pipelined. After: the default is auto (what choose_stream measured fastest). predict auto: "
          "what `predict` runs by default, the modes timed in turns on the stream's own first batches as they are "
          "answered, the rest in the fastest (timing included).\n")
    print("| model | batch | sequential | pipelined (before) | concurrent | auto chose | auto (after) | predict auto |")
    print("|---|---|---|---|---|---|---|---|")
    for p in a.artifacts:
        bench(p, a.batch, a.samples, a.rounds)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
