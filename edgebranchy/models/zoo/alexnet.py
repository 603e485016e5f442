"""B-AlexNet: AlexNet for CIFAR-10 with two side branches.

Branches follow the released code (after conv2 and conv3); the paper's text
places them one convolution earlier. In the code, branch 0 and the main path
both begin with the same ReLU + max-pool + LRN after conv2; here that shared
block ends stage 0 (it runs once, the same function).
"""
from __future__ import annotations

from torch import nn

from edgebranchy.models.branchynet import BranchyNet
from edgebranchy.models.layers import flat_features, lrn, out_shape, pool


def _head(convs: nn.Sequential, in_shape, num_classes: int) -> nn.Sequential:
    return nn.Sequential(*convs, nn.Linear(flat_features(convs, in_shape), num_classes))


def b_alexnet(in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> BranchyNet:
    shape = (in_channels, input_size, input_size)
    stage0 = nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(), pool(3, 2), lrn(),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), pool(3, 2), lrn(),
    )
    s0 = out_shape(stage0, shape)
    exit0 = _head(nn.Sequential(
        nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        pool(3, 2), nn.Flatten(),
    ), s0, num_classes)
    stage1 = nn.Sequential(nn.Conv2d(64, 96, 3, padding=1))
    s1 = out_shape(stage1, s0)
    exit1 = _head(nn.Sequential(
        nn.ReLU(), pool(3, 2), lrn(), nn.Conv2d(96, 32, 3, padding=1), nn.ReLU(), pool(3, 2), nn.Flatten(),
    ), s1, num_classes)
    stage2 = nn.Sequential(
        nn.ReLU(), nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(), pool(3, 2), nn.Flatten(),
    )
    n = flat_features(stage2, s1)
    exit2 = nn.Sequential(
        nn.Linear(n, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )
    return BranchyNet([stage0, stage1, stage2], [exit0, exit1, exit2])
