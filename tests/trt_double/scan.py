"""Static scan of the TensorRT code paths: which TensorRT names they use, where.

Conventions the scan relies on (and the static test enforces):
- the tensorrt module is always bound to the name `trt`;
- TensorRT objects live in variables named as in TRT_RECEIVERS; each module lists
  the attributes it uses on them in its `TRT_OBJECT_API` constant.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgebranchy"
TRT = PACKAGE / "tensorrt"
COMPAT = TRT / "compat.py"
#: every module that touches TensorRT objects; COMPAT first (the only one allowed version-gated names)
MODULES = ("edgebranchy.tensorrt.compat", "edgebranchy.tensorrt.device", "edgebranchy.tensorrt.build",
           "edgebranchy.tensorrt.load", "edgebranchy.tensorrt.lanes", "edgebranchy.runtime.backends.tensorrt",
           "edgebranchy.measure.doctor")
FILES = tuple(PACKAGE.joinpath(*m.split(".")[1:]).with_suffix(".py") for m in MODULES)

#: variable names that hold TensorRT objects in the scanned files
TRT_RECEIVERS = frozenset({"builder", "network", "parser", "err", "config", "profile", "cache", "runtime", "engine",
                           "ctx", "serialized", "layer", "tensor"})


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def root_name(node: ast.AST) -> str | None:
    """The variable an expression hangs off: `network.get_input(0).name` -> "network"."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def trt_module_names(t: ast.AST) -> dict:
    """{name: [line, ...]} of every attribute reached from the `trt` module, including
    names in hasattr/getattr(trt..., "NAME")."""
    out: dict = {}
    for node in ast.walk(t):
        if isinstance(node, ast.Attribute) and root_name(node.value) == "trt":
            out.setdefault(node.attr, []).append(node.lineno)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
                and node.args and root_name(node.args[0]) == "trt"):
            if len(node.args) < 2 or not isinstance(node.args[1], ast.Constant):
                out.setdefault("<dynamic getattr>", []).append(node.lineno)
            else:
                out.setdefault(node.args[1].value, []).append(node.lineno)
    return out


def receiver_names(t: ast.AST) -> dict:
    """{attribute: [line, ...]} of attributes used on TensorRT objects (receivers in TRT_RECEIVERS)."""
    out: dict = {}
    for node in ast.walk(t):
        if isinstance(node, ast.Attribute) and root_name(node.value) in TRT_RECEIVERS:
            out.setdefault(node.attr, []).append(node.lineno)
    return out


@lru_cache(maxsize=None)
def all_trt_names() -> frozenset:
    """Every TensorRT name the scanned files use (module names and object attributes)."""
    import importlib

    names: set = set()
    for path, mod in zip(FILES, MODULES):
        t = tree(path)
        names |= set(trt_module_names(t))
        names |= set(importlib.import_module(mod).TRT_OBJECT_API)
    return frozenset(names)
