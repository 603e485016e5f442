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

    Entropy of softmax(logits / temperature), in nats, divided by ln(C) when `normalize`,
    computed as logsumexp(z) - sum(softmax(z) * z) with the maximum subtracted first, so every
    term stays finite however the graph is imported (TensorRT's parser turns LogSoftmax into
    log(softmax) and ReduceLogSumExp into log(sum(exp)) without the max; FP16 underflows). With `half`, the trunk runs in fp16 while logits and entropy
    stay fp32 (a float32 image entering segment 0 is cast inside the graph).
    """

    def __init__(self, stage: nn.Module, head: nn.Module, last: bool, normalize: bool = False,
                 temperature: float = 1.0, classes: int = 10, half: bool = False):
        super().__init__()
        self.stage, self.head, self.last, self.half_ = stage, head, last, half
        self.inv_t = 1.0 / float(temperature)
        self.scale = 1.0 / math.log(classes) if normalize else 1.0

    def forward(self, x: torch.Tensor):
        if self.half_ and x.dtype == torch.float32:
            x = x.half()
        f = self.stage(x)
        logits = self.head(f).float()
        ent = entropy_nats(logits * self.inv_t) * self.scale
        return (logits, ent) if self.last else (f, logits, ent)


def entropy_nats(z: torch.Tensor) -> torch.Tensor:
    """Per-row entropy of softmax(z): with zs = z - max(z), log(sum(exp(zs))) - sum(p * zs).
    exp(zs) <= 1 and its sum >= 1, so neither log(0) nor overflow can occur, in FP32 or FP16."""
    zs = z - z.max(dim=1, keepdim=True).values
    e = torch.exp(zs)
    total = e.sum(dim=1, keepdim=True)
    return (torch.log(total) - (e * zs).sum(dim=1, keepdim=True) / total).squeeze(1)


class BaselineGraph(nn.Module):
    """The baseline network with fp32 input and logits (fp16 inside when `half`)."""

    def __init__(self, baseline: nn.Module, half: bool = False):
        super().__init__()
        self.net, self.half_ = baseline, half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half() if self.half_ else x).float()
