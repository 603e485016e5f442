"""The modules that become device graphs: a segment with in-graph entropy, and the baseline.

Export traces these; the torch backend runs them directly, so both compute the
same thing.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class SegmentGraph(nn.Module):
    """Stage + exit head: returns (features, logits, entropy), or (logits, entropy) for the last segment.

    `features` is a tuple of tensors where several cross the split (models/fx.py).

    Entropy is computed from log-softmax of logits / temperature, in nats, divided by
    ln(C) when `normalize`. With `half`, the trunk runs in fp16 while logits and entropy
    stay fp32 (a float32 image entering segment 0 is cast inside the graph).
    """

    def __init__(self, stage: nn.Module, head: nn.Module, last: bool, normalize: bool = False,
                 temperature: float = 1.0, classes: int = 10, half: bool = False):
        super().__init__()
        self.stage, self.head, self.last, self.half_ = stage, head, last, half
        self.inv_t = 1.0 / float(temperature)
        self.scale = 1.0 / math.log(classes) if normalize else 1.0

    def forward(self, x):
        # x: the image, the features, or the tuple of tensors a from_model split passes on (already fp16)
        if self.half_ and isinstance(x, torch.Tensor) and x.dtype == torch.float32:
            x = x.half()
        f = self.stage(x)
        logits = self.head(f).float()
        logp = torch.log_softmax(logits * self.inv_t, dim=1)
        ent = -(torch.exp(logp) * logp).sum(dim=1) * self.scale
        return (logits, ent) if self.last else (f, logits, ent)


class BaselineGraph(nn.Module):
    """The baseline network with fp32 input and logits (fp16 inside when `half`)."""

    def __init__(self, baseline: nn.Module, half: bool = False):
        super().__init__()
        self.net, self.half_ = baseline, half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half() if self.half_ else x).float()
