"""Bring your own backbone: a BranchyNet from an nn.Sequential and split points."""
from __future__ import annotations

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
