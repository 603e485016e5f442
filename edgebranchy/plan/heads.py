"""Exit heads trained on the frozen backbone's cached features; their validation logits are kept (resume)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgebranchy.models.backbones import make_head


def head_logits(root: str | os.PathLike, key: str, kind: str, train_x: np.ndarray, train_y: np.ndarray,
                val_x: np.ndarray, num_classes: int, epochs: int, seed: int, batch: int = 128,
                lr: float = 1e-3) -> tuple[np.ndarray, bool]:
    """(validation logits of a `kind` head trained for `epochs` on (train_x, train_y) features, whether they came
    from the cache under `root`, keyed by the features and the training settings)."""
    from edgebranchy.util.files import atomic_write_bytes

    path = Path(root) / f"{key}-{kind}-e{epochs}-s{seed}-b{batch}-lr{lr:g}.npy"
    if path.is_file():
        from edgebranchy.util.readers import load_npy

        return load_npy(path, "plan-cache"), True
    torch.manual_seed(seed)
    head = make_head(kind, tuple(train_x.shape[1:]), num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    y = torch.as_tensor(np.asarray(train_y, dtype=np.int64))
    g = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g).numpy()
        for i in range(0, len(y), batch):
            idx = np.sort(perm[i:i + batch])
            xb = torch.as_tensor(np.asarray(train_x[idx], dtype=np.float32))
            loss = F.cross_entropy(head(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(val_x), 1000):
            out.append(head(torch.as_tensor(np.asarray(val_x[i:i + 1000], dtype=np.float32))).numpy())
    logits = np.concatenate(out).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, logits)
    atomic_write_bytes(path, buf.getvalue())
    return logits, False
