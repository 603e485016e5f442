"""Run in a subprocess with the real TensorRT bindings on sys.path: prints, as JSON, every class of the module with
its members (method signatures from the pybind docstrings, properties and whether they can be set, enum members),
and the module's other names. Standard library only (the subprocess has nothing else).

Usage: python describe_module.py MODULE_NAME
"""
from __future__ import annotations

import importlib
import inspect
import json
import re
import sys

OPEN, CLOSE = "[(<{", "])>}"


def split_top(text: str) -> list:
    """Split on the commas that are not inside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def signatures(name: str, doc: str) -> list:
    """[[param name, has a default], ...] per overload, from `name(self: C, a: T, b: T = d) -> R` lines."""
    out = []
    for line in (doc or "").splitlines():
        m = re.match(r"^\s*(?:\d+\.\s+)?" + re.escape(name) + r"\((.*)\)\s*(->.*)?$", line)
        if not m or "*args" in m.group(1):
            continue
        params = []
        for p in split_top(m.group(1)):
            pname = p.split(":", 1)[0].split("=", 1)[0].strip()
            if pname != "self":
                params.append([pname, "=" in p])
        out.append(params)
    return out


def describe_class(cls: type) -> dict:
    members = {}
    enum = getattr(cls, "__members__", None)
    for m in sorted(set(dir(cls)) | {"__init__"}):
        if m.startswith("_") and m != "__init__":
            continue
        try:
            raw = inspect.getattr_static(cls, m)
        except AttributeError:
            continue
        if isinstance(enum, dict) and m in enum:
            members[m] = {"kind": "enum"}
        elif isinstance(raw, property):
            members[m] = {"kind": "property", "settable": raw.fset is not None}
        elif isinstance(raw, type):
            members[m] = {"kind": "class"}
        elif callable(getattr(cls, m, None)):
            members[m] = {"kind": "method", "signatures": signatures(m, getattr(getattr(cls, m), "__doc__", ""))}
        else:
            members[m] = {"kind": "value"}
    return members


def main() -> None:
    mod = importlib.import_module(sys.argv[1])
    out = {"version": str(mod.__version__), "classes": {}, "module": {"__version__": "value"}}
    todo = [(n, getattr(mod, n)) for n in dir(mod) if not n.startswith("_")]
    while todo:
        name, obj = todo.pop()
        if isinstance(obj, type):
            out["classes"][name] = describe_class(obj)
            todo += [(f"{name}.{m}", getattr(obj, m)) for m, d in out["classes"][name].items() if d["kind"] == "class"]
        elif "." not in name:
            out["module"][name] = "callable" if callable(obj) else "value"
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
