"""The manifest's field checks: the input block, classes, temperatures, thresholds and the single graph's entry
(used by `manifest.validate_manifest` and by checkpoint loading; no torch)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_finite_at_least, is_int_at_least, is_number


def validate_input_block(where: str, inp: Any, key: str = "input") -> None:
    """shape [C, H, W] of whole numbers >= 1; scale, and std per channel, finite and > 0; mean finite.
    (The checkpoint config's input block is the same format: models/checkpoint.py uses this too.)"""
    if not isinstance(inp, dict):
        raise EdgeBranchyError(f"{where}: '{key}' must be an object with shape, scale, mean and std")
    for k in ("shape", "scale", "mean", "std"):
        if k not in inp:
            raise EdgeBranchyError(f"{where}: '{key}' needs shape, scale, mean and std (no {k!r})")
    shape = inp["shape"]
    if not isinstance(shape, list) or len(shape) != 3 or not all(is_int_at_least(d, 1) for d in shape):
        raise EdgeBranchyError(f"{where}: '{key}.shape' must be [C, H, W], whole numbers >= 1, got {shape!r}")
    scale = inp["scale"]
    if not (is_finite_at_least(scale, 0.0) and scale > 0):
        raise EdgeBranchyError(f"{where}: '{key}.scale' must be a finite number > 0, got {scale!r}")
    for k, positive in (("mean", False), ("std", True)):
        v = inp[k]
        if (not isinstance(v, list) or len(v) != shape[0]
                or not all(is_number(x) and math.isfinite(x) and (x > 0 or not positive) for x in v)):
            rng = "finite numbers > 0" if positive else "finite numbers"
            raise EdgeBranchyError(f"{where}: '{key}.{k}' must be a list of {shape[0]} {rng} (one per channel), "
                                   f"got {v!r}")


def validate_classes(where: str, classes: Any) -> None:
    """A non-empty list of class names (strings)."""
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise EdgeBranchyError(f"{where}: 'classes' must be a non-empty list of class names, got {classes!r:.80}")


def validate_temperatures(where: str, temps: Any, key: str) -> None:
    """None, or a list of finite numbers > 0."""
    if temps is not None and (not isinstance(temps, list)
                              or not all(is_finite_at_least(t, 0.0) and t > 0 for t in temps)):
        raise EdgeBranchyError(f"{where}: '{key}' must be a list of finite numbers > 0, got {temps!r}")


def validate_manifest_fields(where: str, m: dict) -> None:
    """Type and range of every manifest field the runtime reads (one line per problem, naming the field)."""
    from edgebranchy.util.checks import validate_thresholds

    if not isinstance(m.get("model", {}), dict):
        raise EdgeBranchyError(f"{where}: 'model' must be an object")
    validate_input_block(where, m["input"])
    validate_classes(where, m["classes"])
    ent = m["entropy"]
    if not isinstance(ent, dict) or not isinstance(ent.get("normalized", False), bool):
        raise EdgeBranchyError(f"{where}: 'entropy' must be an object whose 'normalized' is true or false")
    validate_temperatures(where, ent.get("temperatures"), "entropy.temperatures")
    ts = [e.get("threshold") for e in m["exits"][:-1]]
    validate_thresholds([0.0 if t is None else t for t in ts], where=f"{where}: exit threshold")
    for k, seg in enumerate(m["segments"]):
        for key in ("input_shape", "feature_shape"):
            v = seg.get(key)
            if v is not None and (not isinstance(v, list) or not all(is_int_at_least(d, 1) for d in v)):
                raise EdgeBranchyError(f"{where}: 'segments[{k}].{key}' must be a list of whole numbers >= 1, "
                                       f"got {v!r}")
    for rel, info in m["files"].items():
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            raise EdgeBranchyError(f"{where}: files[{rel!r}] must be an object with a 'sha256' string")


SINGLE_GRAPH_OUTPUTS = ["label", "logits", "entropy", "exit"]


def validate_single_graph(sg: Any, k_exits: int, where: Path) -> None:
    """The optional `single_graph` entry (export/single_graph.py): one batch-1 graph with the exits inside."""
    if sg is None:
        return
    what = f"{where}: single_graph"
    if not isinstance(sg, dict) or not isinstance(sg.get("file"), str):
        raise EdgeBranchyError(f"{what} has no 'file'")
    names = sg.get("thresholds")
    if not isinstance(names, list) or len(names) != k_exits - 1 or not all(isinstance(n, str) for n in names):
        raise EdgeBranchyError(f"{what}: 'thresholds' must name one threshold per side exit ({k_exits - 1})")
    if sg.get("threshold_mode") not in ("initializer", "input"):
        raise EdgeBranchyError(f"{what}: 'threshold_mode' must be 'initializer' or 'input'")
    if sg.get("batch") != 1 or sg.get("outputs") != SINGLE_GRAPH_OUTPUTS:
        raise EdgeBranchyError(f"{what}: expected batch 1 and outputs {', '.join(SINGLE_GRAPH_OUTPUTS)}")
