"""Small building blocks shared by the zoo networks."""
from __future__ import annotations

import torch
from torch import nn


def pool(k: int = 2, s: int | None = None) -> nn.MaxPool2d:
    """Max pooling in ceil mode, as Chainer's default (cover_all=True) in the paper's code."""
    return nn.MaxPool2d(k, s if s is not None else k, ceil_mode=True)


def lrn() -> nn.LocalResponseNorm:
    """Chainer's default local response normalisation (n=5, k=2, alpha=1e-4, beta=0.75) in PyTorch terms."""
    # PyTorch divides alpha by the window size; Chainer does not.
    return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)


def flat_features(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Number of features `module` produces for one input of `shape` (C, H, W)."""
    was = module.training
    module.eval()
    with torch.no_grad():
        n = module(torch.zeros(1, *shape)).numel()
    module.train(was)
    return int(n)


def out_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    was = module.training
    module.eval()
    with torch.no_grad():
        s = tuple(module(torch.zeros(1, *shape)).shape[1:])
    module.train(was)
    return s
