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
           "edgebranchy.device.doctor_device")
FILES = tuple(PACKAGE.joinpath(*m.split(".")[1:]).with_suffix(".py") for m in MODULES)

#: variable names that hold TensorRT objects in the scanned files, and the class of each
RECEIVER_CLASSES = {"builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser", "err": "ParserError",
                    "config": "IBuilderConfig", "profile": "IOptimizationProfile", "cache": "ITimingCache",
                    "runtime": "Runtime", "engine": "ICudaEngine", "ctx": "IExecutionContext",
                    "serialized": "IHostMemory", "layer": "ILayer", "tensor": "ITensor"}
TRT_RECEIVERS = frozenset(RECEIVER_CLASSES)


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


def _chain(node: ast.AST) -> list | None:
    """["BuilderFlag", "TF32"] for `trt.BuilderFlag.TF32`; None when the expression does not start at `trt`."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return names[::-1] if isinstance(node, ast.Name) and node.id == "trt" else None


def qualified_uses(t: ast.AST) -> list:
    """Every TensorRT member a file uses, class-qualified: (path in the module, line, call or None), where path is
    ["BuilderFlag", "TF32"] for `trt.BuilderFlag.TF32` or ["IExecutionContext", "set_input_shape"] for
    `ctx.set_input_shape(...)`, and call = (positional count, keyword names) when it is called."""
    calls = {id(n.func): n for n in ast.walk(t) if isinstance(n, ast.Call)}
    out = []
    for node in ast.walk(t):
        call = calls.get(id(node))
        sig = (len(call.args), tuple(k.arg for k in call.keywords)) if call is not None else None
        if isinstance(node, ast.Attribute):
            chain = _chain(node)
            if chain is not None and not isinstance(getattr(node, "_eb_parent", None), ast.Attribute):
                out.append((chain, node.lineno, sig))
            elif isinstance(node.value, ast.Name) and node.value.id in RECEIVER_CLASSES:
                out.append(([RECEIVER_CLASSES[node.value.id], node.attr], node.lineno, sig))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
            chain = _chain(node.args[0])
            if chain is not None:
                out.append((chain + [node.args[1].value], node.lineno, None))
    return out


def parented(t: ast.AST) -> ast.AST:
    """Mark each node's parent (`_eb_parent`), so only the longest `trt.` chain is reported."""
    for parent in ast.walk(t):
        for child in ast.iter_child_nodes(parent):
            child._eb_parent = parent
    return t
