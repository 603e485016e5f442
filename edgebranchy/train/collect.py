"""Every exit's logits (and the baseline's) over a split, in one pass (needs torch)."""
from __future__ import annotations

import numpy as np


def collect_logits(net, x: np.ndarray, baseline=None, batch: int = 1000) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(K arrays [N, C] of exit logits, baseline logits or None) for normalised inputs x."""
    import torch

    net.eval()
    outs: list[list[np.ndarray]] = [[] for _ in range(net.num_exits)]
    base: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))
            for k, lg in enumerate(net(xb)):
                outs[k].append(lg.numpy())
            if baseline is not None:
                baseline.eval()
                base.append(baseline(xb).numpy())
    return [np.concatenate(o) for o in outs], (np.concatenate(base) if baseline is not None else None)
