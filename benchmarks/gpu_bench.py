"""B-ResNet (or any artifact) at batch 1 on the torch CUDA backend: baseline vs branchy, with and
without speculation, and the per-exit synchronisation cost.

Usage: python benchmarks/gpu_bench.py ARTIFACT [--checkpoint CKPT] [--samples 500] [--rounds 5]
Needs a CUDA GPU and the checkpoint the artifact was exported from. Prints Markdown.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--checkpoint")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    import torch

    from edgebranchy.data import load_dataset
    from edgebranchy.runtime.runner import EarlyExitRunner

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing measured")
        return 1
    opts = {"device": "cuda", **({"checkpoint": a.checkpoint} if a.checkpoint else {})}
    runners = {"sequential": EarlyExitRunner(a.artifact, backend="torch", options=opts, speculate=False),
               "speculative": EarlyExitRunner(a.artifact, backend="torch", options=opts, speculate=True)}
    art = runners["sequential"].artifact
    x = art.preprocess(load_dataset(a.dataset).test.x[:a.samples])
    singles = [x[i:i + 1] for i in range(len(x))]
    sync = torch.cuda.synchronize
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
    print(f"# GPU benchmark: {torch.cuda.get_device_name()} , torch {torch.__version__}, "
          f"{art.manifest['model']}, {len(x)} samples, batch 1")
    print(f"exit fractions: {', '.join(f'{f * 100:.1f}%' for f in frac)}; thresholds {runners['sequential'].thresholds}")
    print("| variant | p50 per-sample latency (us) | gain over baseline |\n|---|---|---|")
    for k in fns:
        print(f"| {k} | {med[k]:.1f} | {med['baseline'] / med[k]:.2f}x |")
    # per-exit synchronisation: host wall time of launch + entropy read-back vs the GPU time of the segment
    b = EarlyExitRunner(a.artifact, backend="torch", options={**opts, "timing": True}).backend
    h = b.to_device(singles[0])
    print("\n| segment | GPU time (us) | host time launch->decision (us) | sync cost (us) |\n|---|---|---|---|")
    for k in range(art.num_exits):
        gpu, host = [], []
        for _ in range(200):
            sync()
            t0 = time.perf_counter_ns()
            launch = b.launch(k, h, 0)
            launch.entropy()
            host.append((time.perf_counter_ns() - t0) / 1e3)
            gpu.append(launch.timing["gpu_ms"]() * 1e3)
        g, hh = float(np.median(gpu)), float(np.median(host))
        print(f"| {k} | {g:.1f} | {hh:.1f} | {hh - g:.1f} |")
        h = launch.features
    return 0


if __name__ == "__main__":
    sys.exit(main())
