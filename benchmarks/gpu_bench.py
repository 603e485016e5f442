"""An artifact at batch 1 on a GPU backend (torch CUDA or tensorrt): baseline vs branchy, with and without
speculation, and the per-exit synchronisation cost.

Usage: python benchmarks/gpu_bench.py ARTIFACT [--backend torch|tensorrt] [--checkpoint CKPT] [--samples 500]
       [--rounds 5]
torch needs a CUDA GPU and the checkpoint the artifact was exported from; tensorrt needs the artifact's engines
(`edgebranchy build ARTIFACT`). Prints Markdown.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def sync_costs(backend, x: np.ndarray, num_segments: int, repeats: int = 200) -> list:
    """Per segment k (chained from x on lane 0): the median GPU time (the backend's `timing["gpu_ms"]`, a float
    once `entropy()` returned, on every backend) and the median host time from launch to decision, in µs."""
    h = backend.to_device(x)
    rows = []
    for k in range(num_segments):
        gpu, host = [], []
        for _ in range(repeats):
            backend.synchronize()
            t0 = time.perf_counter_ns()
            launch = backend.launch(k, h, 0)
            launch.entropy()
            host.append((time.perf_counter_ns() - t0) / 1e3)
            gpu.append(launch.timing["gpu_ms"] * 1e3)
        rows.append((float(np.median(gpu)), float(np.median(host))))
        h = launch.features
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--backend", choices=("torch", "tensorrt"), default="torch")
    ap.add_argument("--checkpoint")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    from edgebranchy.data import load_dataset
    from edgebranchy.runtime.runner import EarlyExitRunner

    if a.backend == "torch":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA GPU: nothing measured")
            return 1
        opts = {"device": "cuda", **({"checkpoint": a.checkpoint} if a.checkpoint else {})}
    else:
        opts = {}
    runners = {"sequential": EarlyExitRunner(a.artifact, backend=a.backend, options=opts, speculate=False),
               "speculative": EarlyExitRunner(a.artifact, backend=a.backend, options=opts, speculate=True)}
    art = runners["sequential"].artifact
    x = art.preprocess(load_dataset(a.dataset).test.x[:a.samples])
    singles = [x[i:i + 1] for i in range(len(x))]
    sync = runners["sequential"].backend.synchronize
    fns = {"baseline": runners["sequential"].baseline, **{k: r.predict for k, r in runners.items()}}
    for fn in fns.values():
        for xb in singles[:50]:
            fn(xb)
    sync()
    res = {k: [] for k in fns}
    for _ in range(a.rounds):
        for k, fn in fns.items():
            lat = []
            for xb in singles:
                t0 = time.perf_counter_ns()
                fn(xb)
                sync()
                lat.append((time.perf_counter_ns() - t0) / 1e3)
            res[k].append(np.median(lat))
    med = {k: float(np.median(v)) for k, v in res.items()}
    exits = runners["sequential"].predict(x).exits
    frac = np.bincount(exits, minlength=art.num_exits) / len(x)
    gpu = runners["sequential"].backend.describe().get("gpu", "?")
    print(f"# GPU benchmark: {gpu}, {a.backend}, {art.manifest['model']}, {len(x)} samples, batch 1")
    print(f"exit fractions: {', '.join(f'{f * 100:.1f}%' for f in frac)}; thresholds {runners['sequential'].thresholds}")
    print("| variant | p50 per-sample latency (us) | gain over baseline |\n|---|---|---|")
    for k in fns:
        print(f"| {k} | {med[k]:.1f} | {med['baseline'] / med[k]:.2f}x |")
    # per-exit synchronisation: host wall time of launch + entropy read-back vs the GPU time of the segment
    b = EarlyExitRunner(a.artifact, backend=a.backend, options={**opts, "timing": True}).backend
    print("\n| segment | GPU time (us) | host time launch->decision (us) | sync cost (us) |\n|---|---|---|---|")
    for k, (g, hh) in enumerate(sync_costs(b, singles[0], art.num_exits)):
        print(f"| {k} | {g:.1f} | {hh:.1f} | {hh - g:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
