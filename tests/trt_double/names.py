"""Which TensorRT Python names exist in which version (from the bindings' identifier lists).

`names-10.3.txt` and `names-11.4.txt` (beside this file; extracted from the bindings)
list every identifier string in the compiled Python bindings of TensorRT 10.3 and
11.4. They are `strings` output, so a name counts as present when it is

- listed exactly;
- the tail of a listed string: the linker merges a string into a longer one that
  ends with it ("Builder" lives inside "IExprBuilder", "num_errors" inside
  "get_num_errors");
- a component of a mangled C++ name ("DataType" in "N8nvinfer18DataTypeE").

Strings shorter than four characters are dropped by `strings`, so a short name is
found only as the tail of a longer one ("DLA" in "can_run_on_DLA"); one that is not
("GPU") cannot be confirmed and the code must not rely on it.
`__version__` is set by the Python package (tensorrt/__init__.py), not the bindings.

8.5 is checked against the 10.3 list minus the names added after 8.5 below.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON_LEVEL = frozenset({"__version__"})

#: in the 10.3 list but not in TensorRT 8.5 (release notes of 8.6 / 9.x)
ADDED_AFTER_8_5 = frozenset({"builder_optimization_level", "STRONGLY_TYPED", "BF16", "INT64"})


@lru_cache(maxsize=None)
def load(list_name: str) -> frozenset:
    """The identifiers of one list: "10.3" or "11.4"."""
    return frozenset((HERE / f"names-{list_name}.txt").read_text().split())


@lru_cache(maxsize=None)
def _tails(list_name: str) -> tuple:
    return tuple(load(list_name))


def listed(name: str, list_name: str) -> bool:
    """True when `name` is in the list by the rules in the module docstring."""
    names = load(list_name)
    if name in PYTHON_LEVEL or name in names:
        return True
    mangled = f"{len(name)}{name}"
    return any(e.endswith(name) or mangled in e for e in _tails(list_name))


def list_for(version: str) -> str:
    major = int(str(version).split(".")[0])
    return "11.4" if major >= 11 else "10.3"


def exists_in(name: str, version: str) -> bool:
    """Whether TensorRT `version` ("8.5.2", "10.3.0", "11.4.0") has the Python name `name`."""
    if version.startswith("8.") and name in ADDED_AFTER_8_5:
        return False
    return listed(name, list_for(version))
