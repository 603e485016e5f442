"""Seconds per epoch of `edgebranchy train` (B-LeNet, Fashion-MNIST) beside a plain tensor-indexing loop.

Usage: python benchmarks/train_speed.py [--rounds 2] [--limit N]
Both run the same network, data, batch (128) and optimiser in this process, alternating;
the trainer includes its progress output, accuracy bookkeeping and the per-epoch resume
checkpoint. Prints Markdown; recorded output in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from edgebranchy.data import load_dataset
from edgebranchy.models.registry import build_model
from edgebranchy.train.trainer import TrainConfig, Trainer


def plain_epoch(net, module, x, y, opt, weights, joint: bool, seed: int) -> float:
    t0 = time.perf_counter()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    for i in range(0, len(y), 128):
        idx = perm[i:i + 128]
        out = module(x[idx])
        if joint:
            loss = sum(w * F.cross_entropy(o, y[idx]) for w, o in zip(weights, out))
        else:
            loss = F.cross_entropy(out, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int)
    a = ap.parse_args()
    data = load_dataset("fashion-mnist", limit=a.limit)
    x = torch.from_numpy(data.train.x_float(data.norm))
    y = torch.from_numpy(data.train.y)
    res = {"trainer baseline": [], "plain baseline": [], "trainer joint": [], "plain joint": []}
    tmp = tempfile.mkdtemp()
    for r in range(a.rounds):
        cfg = TrainConfig(model="b-lenet", dataset="fashion-mnist", epochs=1, baseline_epochs=1, seed=r)
        tr = Trainer(cfg, os.path.join(tmp, f"m{r}.pt"), progress=True, data=data)
        tr.run()
        for h in tr.history:
            res[f"trainer {h['phase']}"].append(h["seconds"])
        torch.manual_seed(r)
        net = build_model("b-lenet", {"in_channels": 1, "num_classes": 10, "input_size": 28})
        base = net.baseline()
        opt = torch.optim.Adam(list(net.main_parameters()), lr=1e-3, betas=(0.9, 0.999))
        res["plain baseline"].append(plain_epoch(net, base, x, y, opt, None, False, r))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999))
        res["plain joint"].append(plain_epoch(net, net, x, y, opt, [1.0, 0.3], True, r))
    print(f"# Training speed, B-LeNet on Fashion-MNIST ({len(y)} training samples, batch 128), "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {a.rounds} rounds alternating\n")
    print("| phase | edgebranchy train (s/epoch) | plain loop (s/epoch) | ratio |\n|---|---|---|---|")
    for phase in ("baseline", "joint"):
        t, p = np.median(res[f"trainer {phase}"]), np.median(res[f"plain {phase}"])
        print(f"| {phase} | {t:.2f} | {p:.2f} | {t / p:.3f} |")
    print(f"\nraw: { {k: [round(v, 2) for v in vs] for k, vs in res.items()} }")
    return 0


if __name__ == "__main__":
    sys.exit(main())
