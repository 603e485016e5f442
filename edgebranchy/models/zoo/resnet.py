"""B-ResNet: CIFAR ResNet (depth 6n+2) with side branches after the stem and after stage 1."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.branchynet import BranchyNet
from edgebranchy.models.layers import flat_features, lrn, out_shape


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; the shortcut subsamples and zero-pads channels (option A)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            sc = F.pad(sc, (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + sc)


def stage(cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), *[BasicBlock(cout, cout) for _ in range(n - 1)])


def check_depth(depth: int) -> int:
    """The blocks per stage n of a ResNet of `depth` = 6n + 2."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise EdgeBranchyError(f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth}")
    return (depth - 2) // 6


def init_convs(net: nn.Module) -> nn.Module:
    """The zoo's initialisation of every convolution (He, fan-out)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def b_resnet(depth: int = 110, in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> BranchyNet:
    """depth = 6n + 2 (110 as in the paper, 20 for quick runs)."""
    n = check_depth(depth)
    shape = (in_channels, input_size, input_size)
    stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=0, bias=False), nn.BatchNorm2d(16), nn.ReLU())
    s0 = out_shape(stem, shape)
    b0 = nn.Sequential(
        nn.Conv2d(16, 64, 5, padding=2), nn.ReLU(), lrn(),
        nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),
    )
    exit0 = nn.Sequential(*b0, nn.Linear(flat_features(b0, s0), num_classes))
    stage1 = stage(16, 16, n, 1)
    s1 = out_shape(stage1, s0)
    b1 = nn.Sequential(BasicBlock(16, 16), nn.Flatten())
    exit1 = nn.Sequential(*b1, nn.Linear(flat_features(b1, s1), num_classes))
    stage2 = nn.Sequential(stage(16, 32, n, 2), stage(32, 64, n, 2))
    exit2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    return init_convs(BranchyNet([stem, stage1, stage2], [exit0, exit1, exit2]))
