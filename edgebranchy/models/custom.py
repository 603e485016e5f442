"""Bring your own backbone: a BranchyNet from an nn.Sequential and split points; the user's weights."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from torch import nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.branchynet import BranchyNet
from edgebranchy.models.layers import flat_features, pool

HeadFactory = Callable[[tuple, int], nn.Module]


def default_head(feature_shape: tuple, num_classes: int) -> nn.Module:
    """The paper's small branch: one 3x3 conv + ReLU + 2x2 max pool, then one FC (FC only for flat features)."""
    if len(feature_shape) == 1:
        return nn.Linear(feature_shape[0], num_classes)
    if len(feature_shape) != 3:
        raise EdgeBranchyError(f"default head needs C x H x W or flat features, got shape {feature_shape}")
    c = feature_shape[0]
    width = max(8, min(64, c))
    convs = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), pool(2), nn.Flatten())
    return nn.Sequential(*convs, nn.Linear(flat_features(convs, feature_shape), num_classes))


def from_sequential(backbone: nn.Sequential, split_points: Sequence[int | str], input_shape: Sequence[int],
                    num_classes: int, head_factory: HeadFactory | None = None) -> BranchyNet:
    """Split `backbone` after each split point and attach one exit head per split.

    A split point is the index or the name of the layer after which a side exit
    reads the features. The backbone must end with its own classifier: its last
    segment becomes the main exit (the baseline network is the backbone itself).
    Built by the fx splitter (`from_model`) with every layer kept whole.
    """
    from edgebranchy.models.fx import from_model

    if not isinstance(backbone, nn.Sequential):
        raise EdgeBranchyError(f"from_sequential needs an nn.Sequential backbone, got {type(backbone).__name__}")
    names = [n for n, _ in backbone.named_children()]
    points = []
    for sp in split_points:
        if isinstance(sp, str):
            if sp not in names:
                raise EdgeBranchyError(f"split point {sp!r} is not a layer of the backbone; layers: {names}")
            if names.index(sp) >= len(names) - 1:
                raise EdgeBranchyError(f"split point {sp!r} is the backbone's last layer: nothing would follow it")
            points.append(sp)
        else:
            if not 0 <= int(sp) < len(names) - 1:
                raise EdgeBranchyError(f"split point {sp} out of range 0..{len(names) - 2}")
            points.append(names[int(sp)])
    idx = [names.index(p) for p in points]
    if not idx or sorted(set(idx)) != idx:
        raise EdgeBranchyError(f"split points must be strictly increasing and non-empty, got {list(split_points)}")
    return from_model(backbone, points, input_shape, num_classes, head_factory, leaf_modules=names)


def load_init_weights(net: BranchyNet, path: str | os.PathLike, skip: Sequence[str] = ()) -> dict:
    """Load a user's weights file (a state_dict, read weights-only) into the network's main branch.

    Keys are those of the model given to from_model/from_sequential ("layer1.0.conv1.weight"),
    or the BranchyNet's own ("stages.0...."). Every main-branch weight must be present with its
    shape; a key the network does not have is an error. Side exit heads keep their initialisation.
    `skip`: module paths (key prefixes, "fc", "classifier") left as initialised, in the network and in
    the file alike (an ImageNet classifier in a 10-class model); each must name a weight of one of them.
    Returns {"loaded": number of tensors, "form": "backbone" | "branchynet", "skip": [...], "skipped":
    [the network's keys left as initialised]}.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgeBranchyError(f"`init_weights`: {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - damaged files and pickled objects raise many types
        raise EdgeBranchyError(f"`init_weights`: {path} is not a weights-only state_dict "
                               f"({(str(e).splitlines() or [type(e).__name__])[0][:160]})") from None
    if isinstance(obj, dict) and obj.get("format") == "edgebranchy.checkpoint":
        raise EdgeBranchyError(f"`init_weights`: {path} is an edgebranchy checkpoint; give the model's own "
                               "state_dict (torch.save(model.state_dict(), FILE))")
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgeBranchyError(f"`init_weights`: {path} does not hold a state_dict (name -> tensor)")
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}  # saved from DDP
    main = net.main_state_dict()
    form = "branchynet" if any(k.startswith("stages.") for k in sd) else "backbone"
    last = f"exits.{net.num_exits - 1}."
    own = {k: k if form == "branchynet" else _model_key(k, last) for k in main
           if k.startswith("stages.") or k.startswith(last)}
    skip = _check_skip(skip, [*net.state_dict(), *sd], last, path)
    skipped = sorted(k for k in own if _skipped(k, skip, last))
    own = {k: src for k, src in own.items() if k not in skipped}
    sd = {k: v for k, v in sd.items() if not _skipped(k, skip, last)}
    missing = sorted({src for src in own.values() if src not in sd})
    allowed = set(own.values()) | ({k for k in net.state_dict() if k.startswith("exits.")} if form == "branchynet"
                                   else set())
    unexpected = sorted(k for k in sd if k not in allowed)
    if missing or unexpected:
        parts = ([f"missing {len(missing)} key(s) the network needs, e.g. {', '.join(missing[:3])}"] if missing
                 else []) + ([f"{len(unexpected)} key(s) the network does not have, e.g. {', '.join(unexpected[:3])}"]
                             if unexpected else [])
        tops = {_model_key(k, last).split(".")[0] for k in missing + unexpected}
        hint = f" (`init_skip` {tops.pop()} leaves that module as initialised)" if len(tops) == 1 else ""
        raise EdgeBranchyError(f"`init_weights`: {path} does not fit the model: {'; '.join(parts)}{hint}")
    state = net.state_dict()
    target = {dst: sd[src] for dst, src in own.items()}
    if form == "branchynet":
        target.update({k: v for k, v in sd.items() if k.startswith("exits.")})
    for k, v in target.items():
        if tuple(v.shape) != tuple(state[k].shape):
            src = own.get(k, k)
            raise EdgeBranchyError(f"`init_weights`: {path}: {src} has shape {list(v.shape)}, the network's has "
                                   f"{list(state[k].shape)} (a classifier for another number of classes? "
                                   f"`init_skip` {_model_key(src, last).split('.')[0]} leaves it as initialised)")
    net.load_state_dict(target, strict=False)
    return {"loaded": len(target), "form": form, "skip": list(skip), "skipped": skipped}


def _model_key(key: str, last: str) -> str:
    """A BranchyNet key as the user's model names it: stages.K.<key> and <last exit>.<key> -> <key>."""
    if key.startswith("stages."):
        return key.split(".", 2)[2]
    return key[len(last):] if key.startswith(last) else key


def _skipped(key: str, skip: Sequence[str], last: str) -> bool:
    names = {key, _model_key(key, last)}
    return any(n == p or n.startswith(p + ".") for n in names for p in skip)


def _check_skip(skip: Sequence[str], keys: list[str], last: str, path) -> list[str]:
    """The `init_skip` prefixes, each naming a weight of the network or of the file (a typo is refused)."""
    out = [str(p).strip().strip(".") for p in skip]
    for p in out:
        if not p or not any(_skipped(k, [p], last) for k in keys):
            raise EdgeBranchyError(f"`init_skip` {p!r}: no weight of the network or of {path} is under that name "
                                   "(give a module path such as fc or classifier)")
    return out
