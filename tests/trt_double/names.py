"""Which TensorRT Python names exist in which version.

`names-8.5.txt`, `names-8.6.txt`, `names-10.3.src.txt` and `names-11.1.src.txt`
(copied from shared/reference/tensorrt-api) are exact identifier lists extracted
from the Python binding sources (NVIDIA/TensorRT `python/src` plus the package
`__init__.py`) at tags 8.5.2, v8.6.1, v10.3.0 and v11.1. They are not
class-qualified: they catch removed APIs, not every misuse.

A claimed version is checked against the list of its line: 8.5.x -> 8.5, 8.6.x
and 9.x -> 8.6 (plus STRONGLY_TYPED, added in 9.0), 10.x -> 10.3, 11.x -> 11.1
(the newest source available; a name added after 11.1 is unknown here).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTS = {"8.5": "names-8.5.txt", "8.6": "names-8.6.txt", "10.3": "names-10.3.src.txt", "11.1": "names-11.1.src.txt"}
#: the claimed versions the double is tested with, one per list
SUPPORTED = ("8.5", "8.6", "10.3", "11.1")
#: added in 9.0 (NvInfer.h of 9.x): a claimed 9.x has them on top of the 8.6 list
ADDED_IN_9 = frozenset({"STRONGLY_TYPED"})


@lru_cache(maxsize=None)
def load(list_name: str) -> frozenset:
    """The identifiers of one list: "8.5", "8.6", "10.3" or "11.1"."""
    return frozenset((HERE / LISTS[list_name]).read_text().split())


def listed(name: str, list_name: str) -> bool:
    return name in load(list_name)


def list_for(version: str) -> str:
    major, minor = (int(p) for p in str(version).split(".")[:2])
    if major == 8:
        return "8.5" if minor <= 5 else "8.6"
    if major == 9:
        return "8.6"
    return "10.3" if major == 10 else "11.1"


def exists_in(name: str, version: str) -> bool:
    """Whether TensorRT `version` ("8.5.2", "8.6.1", "10.3.0", "11.4.0") has the Python name `name`."""
    if str(version).startswith("9.") and name in ADDED_IN_9:
        return True
    return listed(name, list_for(version))


def in_every_version(name: str) -> bool:
    """Listed in all four; Python's own dunder protocol (`ILogger.__init__`) counts as present."""
    if name.startswith("__") and name.endswith("__") and name != "__version__":
        return True
    return all(listed(name, v) for v in SUPPORTED)


@lru_cache(maxsize=None)
def removed_after_8() -> frozenset:
    """Names present in 8.5, 8.6 or 10.3 and gone by 11.1 (removed in 10.x or 11.x)."""
    return (load("8.5") | load("8.6") | load("10.3")) - load("11.1")
