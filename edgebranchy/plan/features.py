"""Features at every candidate, computed in one pass over the data and cached on disk.

One GraphModule returns the main tensor at every candidate and the model's output; each candidate's features on
the head-training sample and on the validation split go to their own .npy files (float16, written to a temporary
name and renamed), named by a key over the model's weights, the data split and the candidate. A killed run
finds the finished files and computes only what is missing.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import fx, nn

from edgebranchy.models.fx import trace


def weights_digest(model: nn.Module) -> str:
    """sha256 over the model's state (names, shapes, values)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def feature_key(weights: str, split: dict, name: str) -> str:
    """The cache key of one candidate's features: weights digest + data split + candidate name."""
    blob = json.dumps({"weights": weights, "split": split, "candidate": name}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def prefix_module(model: nn.Module, points: Sequence[str]) -> fx.GraphModule:
    """A GraphModule computing `model` up to the last of `points` and returning their values (one tensor, or a
    tuple in the given order); "output" names the model's own output."""
    from edgebranchy.models.fx import resolve_points

    gm, names = trace(model)
    out_node = list(gm.graph.nodes)[-1]
    want = [p for p in points if p != "output"]
    nodes = dict(zip(want, resolve_points(gm, names, want))) if want else {}
    g, env = fx.Graph(), {}
    last = max([list(gm.graph.nodes).index(n) for n in nodes.values()] + [0])
    if "output" in points:
        last = len(gm.graph.nodes) - 1
    for i, n in enumerate(gm.graph.nodes):
        if i > last or n.op == "output":
            break
        env[n] = g.node_copy(n, lambda a: env[a])
    vals = [fx.node.map_arg(out_node.args[0], lambda a: env[a]) if p == "output" else env[nodes[p]] for p in points]
    g.output(vals[0] if len(vals) == 1 else tuple(vals))
    out = fx.GraphModule(gm, g)
    out.graph.eliminate_dead_code()
    out.recompile()
    return out


class FeatureCache:
    """Each candidate's features on the two splits ("train": the head-training sample, "val") under `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str, split: str) -> Path:
        return self.root / f"{key}-{split}.npy"

    def has(self, key: str) -> bool:
        return all(self.path(key, s).is_file() for s in ("train", "val"))

    def load(self, key: str, split: str) -> np.ndarray:
        from edgebranchy.util.readers import load_npy

        return load_npy(self.path(key, split), "plan-cache", mmap=True)

    def fill(self, model: nn.Module, names: Sequence[str], keys: Sequence[str], splits: dict,
             batch: int = 256, note: Callable[[str], None] = lambda s: None) -> int:
        """Compute the features of the candidates whose files are missing, all in one pass per split; returns how
        many were computed. `splits`: {"train": x, "val": x} (float32 arrays or lazily normalised views). The
        model's output ("output") is kept in float32 (its logits decide the thresholds), features in float16."""
        todo = [(n, k) for n, k in zip(names, keys) if not self.has(k)]
        if not todo:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        net = prefix_module(model, [n for n, _ in todo]).eval()
        for split, x in splits.items():
            note(f"plan: features of {len(todo)} candidate(s) on {len(x)} {split} samples")
            outs, tmps = None, []
            with torch.no_grad():
                for i in range(0, len(x), batch):
                    got = net(torch.as_tensor(np.asarray(x[i:i + batch], dtype=np.float32)))
                    got = got if isinstance(got, tuple) else (got,)
                    if outs is None:
                        tmps = [self.path(k, split).with_suffix(f".tmp{os.getpid()}.npy") for _, k in todo]
                        outs = [np.lib.format.open_memmap(t, mode="w+", shape=(len(x), *v.shape[1:]),
                                                          dtype=np.float32 if n == "output" else np.float16)
                                for t, v, (n, _) in zip(tmps, got, todo)]
                    for o, v in zip(outs, got):
                        o[i:i + len(v)] = v.numpy().astype(o.dtype)
            for o, t, (_, k) in zip(outs or [], tmps, todo):
                o.flush()
                del o
                os.replace(t, self.path(k, split))
        return len(todo)
