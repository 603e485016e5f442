"""The plan file `edgebranchy plan` writes and `train --plan` reads (docs/contracts.md, "Plan file").

A JSON document: the backbone to build (a zoo network's backbone form or module:function, with its arguments),
the chosen split points in execution order, the exit head kind and the feature shape each head reads, and what
the plan expects of them (thresholds, accuracy and speedup on the validation split, the costs behind it).
The head kinds and the registry name are the models package's (imported when a plan is checked: torch).
"""
from __future__ import annotations

import os
from typing import Any

from edgebranchy.errors import EdgeBranchyError

SCHEMA = "edgebranchy.plan"  # util/kinds.PLAN_SCHEMA
VERSION = 1

_REQUIRED = {"schema": str, "schema_version": int, "backbone": str, "backbone_args": dict, "split_points": list,
             "head": str, "head_shapes": list, "input_shape": list, "num_classes": int}


def write_plan(path: str | os.PathLike, doc: dict) -> None:
    """Check `doc` as the reader would, then write it atomically."""
    from edgebranchy.util.files import atomic_write_json

    check_plan(doc, str(path))
    atomic_write_json(path, doc)


def read_plan(path: str | os.PathLike) -> dict:
    """The plan in `path`, checked (one-line EdgeBranchyError naming the file and what is wrong)."""
    from edgebranchy.util.readers import load_json

    doc = load_json(path, "plan")
    check_plan(doc, str(path))
    return doc


def check_plan(doc: Any, where: str) -> None:
    from edgebranchy.models.backbones import HEADS

    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise EdgeBranchyError(f"{where}: not an edgebranchy plan file (write one with `edgebranchy plan`)")
    if doc.get("schema_version") != VERSION:
        raise EdgeBranchyError(f"{where}: plan file version {doc.get('schema_version')!r}; this edgebranchy reads "
                               f"version {VERSION}")
    for key, kind in _REQUIRED.items():
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            raise EdgeBranchyError(f"{where}: `{key}` must be a {kind.__name__}, got {doc.get(key)!r}")
    points = doc["split_points"]
    if not points or not all(isinstance(p, str) and p for p in points) or len(set(points)) != len(points):
        raise EdgeBranchyError(f"{where}: `split_points` must be distinct non-empty names, got {points!r}")
    if doc["head"] not in HEADS:
        raise EdgeBranchyError(f"{where}: `head` must be one of {', '.join(HEADS)}, got {doc['head']!r}")
    shapes = doc["head_shapes"]
    if len(shapes) != len(points) or not all(_dims(s) for s in shapes):
        raise EdgeBranchyError(f"{where}: `head_shapes` must give one feature shape (positive whole numbers) per "
                               f"split point, got {shapes!r}")
    shape = doc["input_shape"]
    if len(shape) != 3 or not _dims(shape) or shape[1] != shape[2]:
        raise EdgeBranchyError(f"{where}: `input_shape` must be [C, N, N], got {shape!r}")
    if doc["num_classes"] < 2:
        raise EdgeBranchyError(f"{where}: `num_classes` must be at least 2, got {doc['num_classes']!r}")


def _dims(s: Any) -> bool:
    return isinstance(s, list) and bool(s) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                    for v in s)


def model_spec(doc: dict) -> tuple[str, dict]:
    """The registry name and arguments that build the planned BranchyNet (what a checkpoint records)."""
    from edgebranchy.models.registry import PLANNED

    c, n, _ = doc["input_shape"]
    return PLANNED, {"backbone": doc["backbone"], "backbone_args": dict(doc["backbone_args"]),
                     "split_points": list(doc["split_points"]), "head": doc["head"], "in_channels": c,
                     "num_classes": doc["num_classes"], "input_size": n}
