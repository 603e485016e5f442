"""The candidate split points of a traceable model: block boundaries by default, or the names the user gives.

A block boundary is the end of a module path that is not itself a node ("layer1.0", "layer2": a residual block,
a stage), or a point right before a convolution or linear layer starts (the end of a conv block in a plain
Sequential), where one tensor crosses. Each candidate says whether one tensor crosses the cut there (`single`: what TensorRT takes most
cheaply, no tuple of live tensors such as a residual block's skip input).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import fx, nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.fx import LeafSpec, live_after, module_ends, resolve_points, trace

_PARAMETRIC = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class Candidate:
    name: str      # the split point, as from_model takes it
    position: int  # the node's place in execution order
    single: bool   # one tensor crosses the cut


def candidates(model: nn.Module, names: Sequence[str] | None = None, leaf_modules: LeafSpec = ()) -> list[Candidate]:
    """The candidates in execution order: `names` (each checked as from_model checks a split point) or the block
    boundaries; a point that is the model's output, its input or a value nothing later reads is left out of the
    default list and refused when named."""
    gm, label = trace(model, leaf_modules)
    order = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(order)}
    if names:
        nodes = resolve_points(gm, label, list(names))
        picked = list(zip([str(n) for n in names], nodes))
        if len({pos[n] for _, n in picked}) != len(picked):
            raise EdgeBranchyError(f"`candidates` name the same point twice: {list(names)}")
    else:
        picked = _boundaries(gm, label, order, pos)
    out = []
    for name, node in picked:
        live = live_after(order, pos, pos[node])
        if node not in live:
            if names:
                raise EdgeBranchyError(f"candidate {name!r}: nothing after it reads its value")
            continue
        out.append(Candidate(name, pos[node], len(live) == 1))
    out.sort(key=lambda c: c.position)
    if not out:
        raise EdgeBranchyError(f"{type(model).__name__} has no block boundary to place an exit at; name the "
                               "points with `candidates` (edgebranchy.models.fx.node_names lists them)")
    return out


def _boundaries(gm: fx.GraphModule, label: dict, order: list, pos: dict) -> list[tuple[str, fx.Node]]:
    """(name, node) of every block boundary before the model's last parametric layer (the classifier), one name
    per node: the outermost module path ending there, else the node's own name; only where one tensor crosses (a
    residual block's inside, where its skip input crosses too, is for `candidates` to name)."""
    calls = [n for n in order if n.op == "call_module" and isinstance(gm.get_submodule(n.target), _PARAMETRIC)]
    if not calls:
        return []
    last = pos[calls[-1]]
    found: dict[fx.Node, str] = {}
    for node, paths in module_ends(gm, label).items():
        if pos[node] < last and live_after(order, pos, pos[node]) == [node]:
            found[node] = paths[-1]
    computed = [n for n in order if n.op not in ("placeholder", "get_attr", "output")]
    for prev, nxt in zip(computed, computed[1:]):  # the end of a conv block: right before the next conv starts
        if (nxt in calls and nxt is not calls[-1] and prev not in found
                and live_after(order, pos, pos[prev]) == [prev]):
            found[prev] = label[prev]
    return [(name, node) for node, name in found.items()]
