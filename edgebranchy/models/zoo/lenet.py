"""B-LeNet: LeNet with one side branch after conv1 (the paper's MNIST network)."""
from __future__ import annotations

from torch import nn

from edgebranchy.models.branchynet import BranchyNet
from edgebranchy.models.layers import flat_features, out_shape, pool


def b_lenet(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> BranchyNet:
    """Layers and branch placement of the released code; layer sizes computed for the input size.

    In the paper's code both the branch and the main path begin with the same
    max-pool + ReLU on conv1's output; here that shared pair ends stage 0, so it
    runs once and the features handed to the next segment are 4x smaller. The
    network computes exactly the same function.
    """
    shape = (in_channels, input_size, input_size)
    stage0 = nn.Sequential(nn.Conv2d(in_channels, 5, 5, padding=3), pool(2), nn.ReLU())
    s0 = out_shape(stage0, shape)
    branch_convs = nn.Sequential(nn.Conv2d(5, 10, 3, padding=1), pool(2), nn.ReLU(), nn.Flatten())
    exit0 = nn.Sequential(*branch_convs, nn.Linear(flat_features(branch_convs, s0), num_classes))
    stage1 = nn.Sequential(
        nn.Conv2d(5, 10, 5, padding=3),
        pool(2), nn.ReLU(), nn.Conv2d(10, 20, 5, padding=3),
        pool(2), nn.ReLU(), nn.Flatten(),
    )
    n = flat_features(stage1, s0)
    exit1 = nn.Sequential(nn.Linear(n, 84), nn.Linear(84, num_classes))
    return BranchyNet([stage0, stage1], [exit0, exit1])
