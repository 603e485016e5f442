"""The segment plan: which model exits stay in the device graphs, the stages fused into each, their costs.

A side exit calibrated to threshold 0 lets no sample leave (the rule is entropy < T and
entropy >= 0): its head would only cost time, so its stage is fused into the next segment.
Export, the torch backend and calibration with switched-off exits all plan segments here.
`kept_exits` and `fused_costs` need no torch; `segment_graphs` imports it when called.
"""
from __future__ import annotations

from typing import Any, Sequence

from edgebranchy.errors import EdgeBranchyError


def kept_exits(num_exits: int, thresholds: Sequence[float] | None, prune: bool = True) -> list[int]:
    """Model exits that keep their head: the last one, and every side exit not calibrated to 0 (with `prune`)."""
    return [j for j in range(num_exits)
            if j == num_exits - 1 or not prune or not thresholds or thresholds[j] > 0]


def check_plan(keep: Sequence[int], num_exits: int, where: str = "segment plan") -> list[int]:
    """`keep` as a list after checking it is increasing model exits ending with the last one."""
    keep = [int(j) for j in keep]
    if not keep or keep[-1] != num_exits - 1 or keep != sorted(set(keep)) or keep[0] < 0:
        raise EdgeBranchyError(f"{where}: segment plan {keep} does not fit a network with {num_exits} exits")
    return keep


def fused_costs(stage_costs: Sequence[float], head_costs: Sequence[float], keep: Sequence[int]) -> list[float]:
    """Cost of each kept segment: the stages fused into it plus its own head."""
    out, prev = [], -1
    for j in keep:
        out.append(sum(stage_costs[prev + 1:j + 1]) + head_costs[j])
        prev = j
    return out


def segment_graphs(net: Any, keep: Sequence[int], *, classes: int, normalize: bool = False,
                   temperatures: Sequence[float] | None = None, half: bool = False) -> list[Any]:
    """One `SegmentGraph` per kept exit: the fused stages, the exit's head, entropy in the graph.

    With `half` the graphs hold fp16 copies of the weights (the network itself is not changed).
    """
    import copy

    import torch

    from edgebranchy.models.graphs import SegmentGraph

    keep = check_plan(keep, net.num_exits)
    temps = list(temperatures) if temperatures else [1.0] * net.num_exits
    graphs, prev = [], -1
    for k, j in enumerate(keep):
        parts = list(net.stages)[prev + 1:j + 1]
        stage = parts[0] if len(parts) == 1 else torch.nn.Sequential(*parts)
        head = net.exits[j]
        if half:
            stage, head = copy.deepcopy(stage).half(), copy.deepcopy(head).half()
        graphs.append(SegmentGraph(stage, head, k == len(keep) - 1, normalize, temps[j], classes, half))
        prev = j
    return graphs
