"""Every exit's outputs over an artifact's whole chain of segments, no early exit (what calibration on the
device and `doctor ARTIFACT` compare)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def collect_device_outputs(backend, x: np.ndarray, num_exits: int, batch_size: int = 256,
                           on_batch: Callable[[], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every exit's logits [N, C] and graph-computed entropies [N] for normalised inputs `x` (no early exit);
    `on_batch` is called after each batch (progress)."""
    logits: list[list[np.ndarray]] = [[] for _ in range(num_exits)]
    ents: list[list[np.ndarray]] = [[] for _ in range(num_exits)]
    for i in range(0, len(x), batch_size):
        h = backend.to_device(np.ascontiguousarray(x[i:i + batch_size]))
        for k in range(num_exits):
            launch = backend.launch(k, h, 0)
            ents[k].append(np.asarray(launch.entropy(), dtype=np.float32).copy())
            logits[k].append(np.asarray(backend.to_host(launch.logits), dtype=np.float32).copy())
            h = launch.features
        if on_batch is not None:
            on_batch()
    backend.synchronize()
    return [np.concatenate(v) for v in logits], [np.concatenate(v) for v in ents]
