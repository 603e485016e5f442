"""Which ONNX Runtime session settings suit the early-exit loop: threads per session and spinning.

Usage: python benchmarks/ort_settings.py ARTIFACT [--samples 500] [--rounds 5]
For each setting, the runner (one session per segment) and baseline.onnx run the same
test samples at batch 1, interleaved round by round. Prints Markdown.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from edgebranchy.data import load_dataset
from edgebranchy.runtime.runner import EarlyExitRunner

SETTINGS = {
    "1 thread, no spinning (default)": {"intra_op_threads": 1, "allow_spinning": False},
    "1 thread, spinning": {"intra_op_threads": 1, "allow_spinning": True},
    "2 threads, no spinning": {"intra_op_threads": 2, "allow_spinning": False},
    "2 threads, spinning (ORT's own default)": {"intra_op_threads": 2, "allow_spinning": True},
}


def per_sample_us(fn, singles) -> float:
    t0 = time.perf_counter_ns()
    for xb in singles:
        fn(xb)
    return (time.perf_counter_ns() - t0) / 1e3 / len(singles)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dataset", default="fashion-mnist")
    a = ap.parse_args()
    runners = {k: EarlyExitRunner(a.artifact, options=v) for k, v in SETTINGS.items()}
    art = next(iter(runners.values())).artifact
    x = art.preprocess(load_dataset(a.dataset).test.x[:a.samples])
    singles = [x[i:i + 1] for i in range(len(x))]
    res = {k: {"branchy": [], "baseline": []} for k in SETTINGS}
    for r in runners.values():
        for xb in singles[:100]:
            r.predict(xb), r.baseline(xb)
    for _ in range(a.rounds):
        for k, r in runners.items():
            res[k]["branchy"].append(per_sample_us(r.predict, singles))
            res[k]["baseline"].append(per_sample_us(r.baseline, singles))
    exits = next(iter(runners.values())).predict(x).exits
    print(f"# ONNX Runtime settings at batch 1 ({art.manifest['model']['name']}, {len(x)} samples, "
          f"{np.mean(exits == 0) * 100:.1f}% leave at exit 0, {a.rounds} interleaved rounds)\n")
    print("| setting | baseline (us/sample) | branchy (us/sample) | gain |\n|---|---|---|---|")
    for k in SETTINGS:
        b, e = np.median(res[k]["baseline"]), np.median(res[k]["branchy"])
        print(f"| {k} | {b:.1f} | {e:.1f} | {b / e:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
