"""`plan` from end to end: candidates -> cached features -> heads (accuracy) -> measured costs -> search -> plan.

Resumable: features, head logits and the cost table live in the cache directory under keys that name the
weights, the data split and the settings, so a killed plan continues from what it finished.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.plan.file import SCHEMA, VERSION
from edgebranchy.util.talk import say


@dataclass
class PlanOptions:
    model: str
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    image: dict | None = None              # image folder reader options (data/imagefolder.py), imagefolder only
    init_weights: str | None = None
    backbone_args: dict = field(default_factory=dict)
    candidates: list | None = None
    reference: list | None = None          # a placement to report beside the chosen one (default: the zoo's)
    max_exits: int = 2
    max_accuracy_drop: float | None = None
    budget: float | None = None
    head: str = "conv"
    head_epochs: int = 4
    train_samples: int = 10000
    batch_size: int = 1
    cost: str = "measured"                 # or "macs"
    rounds: int = 15
    val_size: int | None = None
    samples: int | None = None
    seed: int = 0
    cache: str = "runs/plan-cache"


def _load_weights(model, path: str) -> None:
    """A state_dict of the backbone, or an edgebranchy checkpoint whose main path has the backbone's layers in the
    same order (a zoo network's checkpoint for its backbone form): loaded by position, every shape checked."""
    from edgebranchy.models.checkpoint import load_checkpoint, torch_load

    if not Path(path).exists():
        raise EdgeBranchyError(f"`init_weights`: {path} not found")
    obj = torch_load(Path(path), "checkpoint", "weights-only file")
    own = model.state_dict()
    if isinstance(obj, dict) and obj.get("format") == "edgebranchy.checkpoint":
        src = list(load_checkpoint(path).baseline_state.values())
        if len(src) != len(own) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src, own.values())):
            raise EdgeBranchyError(f"`init_weights`: the main path of checkpoint {path} does not have the backbone's "
                                   "layers in the same order")
        obj = dict(zip(own, src))
    try:
        model.load_state_dict(obj, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise EdgeBranchyError(f"`init_weights`: {path} does not fit the model: "
                               f"{(str(e).splitlines() or ['?'])[0][:200]}") from None


def _setup(o: PlanOptions):
    from edgebranchy.data import load_dataset
    from edgebranchy.models.backbones import PAPER_POINTS, build_backbone

    data = load_dataset(o.dataset, o.data_dir, val_size=o.val_size, seed=o.seed, limit=o.samples, image=o.image)
    c, h, w = data.input_shape
    if h != w:
        raise EdgeBranchyError(f"plan takes square inputs; {data.name} is {h}x{w}")
    args = {"in_channels": c, "num_classes": len(data.classes), "input_size": h, **o.backbone_args}
    import torch

    torch.manual_seed(o.seed)
    model = build_backbone(o.model, args)
    if o.init_weights:
        _load_weights(model, o.init_weights)
    else:
        say(f"plan: no --init-weights: planning on the weights {o.model} is built with (untrained, unless its "
            "factory loads trained ones)")
    model.eval()
    ref = o.reference if o.reference is not None else PAPER_POINTS.get(o.model)
    return data, args, model, ref


def make_plan(o: PlanOptions) -> dict:
    """Run the whole plan; returns the plan document (plan/file.py) with the per-candidate table and placements."""
    from edgebranchy.data.splits import index_digest
    from edgebranchy.plan.candidates import candidates
    from edgebranchy.plan.features import FeatureCache, feature_key, weights_digest
    from edgebranchy.plan.heads import head_logits
    from edgebranchy.plan.search import evaluate_placement, frontier, search

    t0 = time.perf_counter()
    data, args, model, ref = _setup(o)
    cands = candidates(model, o.candidates)
    extra = [p for p in (ref or []) if p not in [c.name for c in cands]]
    if extra:
        cands = sorted(cands + candidates(model, extra), key=lambda c: c.position)
    names = [c.name for c in cands]
    say(f"plan: {len(names)} candidate(s): {', '.join(names)}")
    rng = np.random.default_rng(o.seed)
    n_tr = min(o.train_samples, len(data.train))
    idx = np.sort(rng.choice(len(data.train), n_tr, replace=False))
    split = {**data.describe(), "head_train_index": index_digest(idx)}
    wd = weights_digest(model)
    keys = {n: feature_key(wd, split, n) for n in names + ["output"]}
    cache = FeatureCache(Path(o.cache) / "features")
    done = sum(cache.has(keys[n]) for n in names + ["output"])
    say(f"plan: features cached for {done} of {len(names) + 1} (candidates and the model's output)")
    cache.fill(model, names + ["output"], [keys[n] for n in names + ["output"]],
               {"train": data.train.x_float(data.norm, idx), "val": data.val.x_float(data.norm)}, note=say)
    ytr, yval = data.train.y[idx], data.val.y
    final = np.asarray(cache.load(keys["output"], "val"), dtype=np.float32)
    shapes = {n: tuple(cache.load(keys[n], "val").shape[1:]) for n in names}
    logits, acc, reused = {}, {}, 0
    for i, n in enumerate(names):
        say(f"plan: exit head {i + 1}/{len(names)} at {n} ({o.head}, {o.head_epochs} epochs on {n_tr} samples)")
        logits[n], was = head_logits(Path(o.cache) / "heads", keys[n], o.head, cache.load(keys[n], "train"), ytr,
                                     cache.load(keys[n], "val"), len(data.classes), o.head_epochs, o.seed)
        reused += was
        acc[n] = float((logits[n].argmax(1) == yval).mean())
    say(f"plan: exit heads cached for {reused} of {len(names)}")
    costs = _costs(o, model, names, shapes, len(data.classes), data, wd)
    res = search(names, logits, final, yval, costs, o.max_exits, o.max_accuracy_drop, o.budget)
    reference = None
    if ref:
        try:
            reference = evaluate_placement(ref, logits, final, yval, costs, o.max_accuracy_drop, o.budget)
        except EdgeBranchyError as e:
            reference = {"split_points": list(ref), "error": str(e)}
    chosen = res["chosen"]
    single = {c.name: c.single for c in cands}
    return {
        "schema": SCHEMA, "schema_version": VERSION, "backbone": o.model,
        "backbone_args": dict(o.backbone_args), "split_points": chosen["split_points"], "head": o.head,
        "head_shapes": [list(shapes[p]) for p in chosen["split_points"]], "input_shape": list(data.input_shape),
        "num_classes": len(data.classes), "init_weights": o.init_weights, "dataset": data.describe(),
        "target": {"max_accuracy_drop": o.max_accuracy_drop, "budget": o.budget, "max_exits": o.max_exits},
        "final_accuracy": float((final.argmax(1) == yval).mean()), "costs": costs, "expected": chosen,
        "reference": reference,
        "candidates": [{"name": n, "single_tensor": single[n], "feature_shape": list(shapes[n]),
                        "head_accuracy": acc[n], "prefix_cost": costs["prefix"][n], "head_cost": costs["head"][n]}
                       for n in names],
        "frontier": frontier(res["placements"]), "placements_feasible": len(res["placements"]),
        "placements_infeasible": res["infeasible"],
        "head_training": {"epochs": o.head_epochs, "samples": n_tr, "seed": o.seed},
        "seconds": time.perf_counter() - t0,
    }


def _costs(o: PlanOptions, model, names, shapes, num_classes: int, data, wd: str) -> dict:
    """The cost table: measured on ONNX Runtime (cached in the cache directory, so a resumed plan keeps it), or
    MACs when asked or when ONNX Runtime is not there."""
    import hashlib
    import json

    from edgebranchy.plan.costs import mac_costs, measured_costs
    from edgebranchy.util.files import atomic_write_json
    from edgebranchy.util.readers import load_json

    shp = [shapes[n] for n in names]
    if o.cost == "macs":
        return mac_costs(model, names, shp, o.head, num_classes, data.input_shape, "asked for: --cost macs")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return mac_costs(model, names, shp, o.head, num_classes, data.input_shape, "ONNX Runtime is not installed")
    # the input shape too: a network with a global pool has the same weights at every image size
    key = hashlib.sha256(json.dumps([wd, names, o.head, o.batch_size, o.rounds, list(data.input_shape)])
                         .encode()).hexdigest()[:32]
    path = Path(o.cache) / f"costs-{key}.json"
    if path.is_file():
        say(f"plan: costs measured earlier: {path}")
        return load_json(path, "plan-cache")
    x = data.val.x_float(data.norm, np.arange(min(o.batch_size, len(data.val))))
    if len(x) < o.batch_size:
        x = np.resize(x, (o.batch_size, *x.shape[1:])).astype(np.float32)
    costs = measured_costs(model, names, shp, o.head, num_classes, np.ascontiguousarray(x), o.rounds, note=say)
    os.makedirs(o.cache, exist_ok=True)
    atomic_write_json(path, costs)
    return costs
