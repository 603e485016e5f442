"""The BranchyNet container: K trunk stages and K exit heads.

Exit k reads the output of stage k; exit K-1 is the main classifier, so the
baseline network is stages[0..K-1] followed by exits[K-1].
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from edgebranchy.errors import EdgeBranchyError


class BranchyNet(nn.Module):
    """Trunk stages with one exit head per stage; `forward` returns K logits tensors."""

    def __init__(self, stages: Sequence[nn.Module], exits: Sequence[nn.Module]):
        super().__init__()
        if len(stages) != len(exits) or len(stages) < 1:
            raise EdgeBranchyError(f"a BranchyNet needs as many exits as stages (got {len(stages)} stages, "
                                   f"{len(exits)} exits)")
        self.stages = nn.ModuleList(stages)
        self.exits = nn.ModuleList(exits)

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage, head in zip(self.stages, self.exits):
            x = stage(x)
            outs.append(head(x))
        return outs

    def main_parameters(self):
        """Parameters of the baseline path (all stages + the final exit)."""
        yield from self.stages.parameters()
        yield from self.exits[-1].parameters()

    def baseline(self) -> "Baseline":
        """A module sharing this network's main-branch weights: the network without side branches."""
        return Baseline(self)

    def main_state_dict(self) -> dict:
        """State dict restricted to the baseline path (keys keep their BranchyNet names)."""
        last = f"exits.{self.num_exits - 1}."
        return {k: v for k, v in self.state_dict().items() if k.startswith("stages.") or k.startswith(last)}


class Baseline(nn.Module):
    """The main branch of a BranchyNet as its own module (shares the weights)."""

    def __init__(self, net: BranchyNet):
        super().__init__()
        self.stages = net.stages
        self.head = net.exits[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

