"""The networks `edgebranchy plan` places exits on: a zoo network's main path as a plain nn.Module, or a user's
`module:function` factory that returns one; and the plan's exit heads.

A zoo BranchyNet has its exits fixed; its backbone here is the same main path (the same layers in the same order,
so the zoo checkpoint's main-path weights load into it by position) without the side branches.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.layers import flat_features, lrn, pool

#: the split points of the zoo's own placement on its backbone (the released code's, as the zoo builds it)
PAPER_POINTS = {"b-alexnet": ["7", "8"], "b-resnet": ["stem", "layer1"]}


def alexnet(in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> nn.Sequential:
    """B-AlexNet's main path (zoo/alexnet.py: stage 0, stage 1, stage 2, the main exit) as one nn.Sequential.
    Its paper placement is after "7" (conv2's ReLU + pool + LRN) and "8" (conv3)."""
    feats = nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(), pool(3, 2), lrn(),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), pool(3, 2), lrn(),
        nn.Conv2d(64, 96, 3, padding=1),
        nn.ReLU(), nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(), pool(3, 2), nn.Flatten(),
    )
    n = flat_features(feats, (in_channels, input_size, input_size))
    return nn.Sequential(*feats, nn.Linear(n, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 128), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(128, num_classes))


class ResNet(nn.Module):
    """B-ResNet's main path (zoo/resnet.py: the stem, stage 1, stage 2's two stages, the main exit) with
    torchvision's names: stem, layer1, layer2, layer3, pool, flatten, fc. Its paper placement is after "stem"
    and "layer1"; every BasicBlock's output is a block boundary ("layer1.0", ..., the last one named by its stage)."""

    def __init__(self, depth: int = 110, in_channels: int = 3, num_classes: int = 10):
        from edgebranchy.models.zoo.resnet import check_depth, stage

        super().__init__()
        n = check_depth(depth)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=0, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1, self.layer2, self.layer3 = stage(16, 16, n, 1), stage(16, 32, n, 2), stage(32, 64, n, 2)
        self.pool, self.flatten, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.layer3(self.layer2(self.layer1(self.stem(x)))))))


def resnet(depth: int = 110, in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> ResNet:
    """B-ResNet's main path at `depth` (6n+2), initialised as the zoo initialises it; `input_size` is accepted
    for the backbone call convention (the network is fully convolutional up to its global pool)."""
    from edgebranchy.models.zoo.resnet import init_convs

    return init_convs(ResNet(depth, in_channels, num_classes))


_BACKBONES = {"b-alexnet": alexnet, "b-resnet": resnet}

#: the exit heads a plan may put at a split point (`make_head`)
HEADS = ("conv", "linear", "pool")


def backbone_names() -> list[str]:
    return sorted(_BACKBONES)


def build_backbone(name: str, args: dict[str, Any]) -> nn.Module:
    """The plain network `name` names (a zoo network with a backbone form, or module:function returning an
    nn.Module that is not a BranchyNet), built with `args` (in_channels, num_classes, input_size)."""
    from edgebranchy.models.branchynet import BranchyNet
    from edgebranchy.models.registry import check_sizes, factory

    if ":" not in name and name not in _BACKBONES:
        raise EdgeBranchyError(f"{name!r} has no backbone form to plan on; plan one of {', '.join(backbone_names())} "
                               "or module:function returning your nn.Module")
    fn = _BACKBONES[name] if name in _BACKBONES else factory(name)
    check_sizes(name, args)  # a plan file's backbone_args ({"depth": ...}) past its bound
    try:
        model = fn(**args)
    except TypeError as e:
        raise EdgeBranchyError(f"bad arguments for model {name!r}: {e}") from None
    if isinstance(model, BranchyNet) or not isinstance(model, nn.Module):
        raise EdgeBranchyError(f"model factory {name!r} returned {type(model).__name__}; plan needs the plain "
                               "network (an nn.Module ending in its classifier), not a BranchyNet")
    return model


def make_head(kind: str, feature_shape: tuple, num_classes: int) -> nn.Module:
    """An exit head of `kind` on features of `feature_shape` (C, H, W or flat): "conv" is from_model's default
    head (3x3 conv + ReLU + 2x2 max pool + FC), "linear" one FC on the flattened features, "pool" global
    average pooling + FC."""
    from edgebranchy.models.custom import default_head

    if kind == "conv":
        return default_head(tuple(feature_shape), num_classes)
    if kind not in HEADS:
        raise EdgeBranchyError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")
    if len(feature_shape) == 1 or kind == "linear":
        n = 1
        for v in feature_shape:
            n *= int(v)
        return nn.Sequential(nn.Flatten(), nn.Linear(n, num_classes))
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(int(feature_shape[0]), num_classes))


def planned(backbone: str, split_points: list, head: str, in_channels: int, num_classes: int, input_size: int,
            backbone_args: dict | None = None) -> "nn.Module":
    """The BranchyNet a plan describes: `backbone` split by from_model at `split_points`, one `head` per split.
    (The registry builds it under the name "planned"; a checkpoint records these arguments.)"""
    from edgebranchy.models.fx import from_model

    args = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size, **(backbone_args or {})}
    model = build_backbone(backbone, args)
    return from_model(model, [str(p) for p in split_points], (in_channels, input_size, input_size), num_classes,
                      head_factory=lambda shape, n: make_head(head, shape, n))

