"""Shared state of one installed double: claimed versions, the simulated GPU, violations, the op log."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from trt_double import names


class StrictDoubleError(AssertionError):
    """Raised where real TensorRT/CUDA would fail, misbehave or silently do the wrong thing."""


@dataclass
class State:
    version: str                      # claimed TensorRT version
    gpu: str                          # GPU name
    cc: tuple                         # compute capability
    dla_cores: int = 0
    sm_count: int = 16                # streaming multiprocessors (AGX Orin 16, Orin NX 8, Orin Nano 8/4)
    violations: list = field(default_factory=list)
    accessed: set = field(default_factory=set)        # public names looked up on fake TensorRT objects
    ops: list = field(default_factory=list)           # (kind, stream handle, info) in enqueue order
    builds: list = field(default_factory=list)        # one dict per build_serialized_network
    leaks: list = field(default_factory=list)         # pycuda objects collected without their context
    lock: threading.RLock = field(default_factory=threading.RLock)
    tls: threading.local = field(default_factory=threading.local)

    def allows(self, name: str) -> bool:
        return names.exists_in(name, self.version)

    def fail(self, msg: str, exc: type = StrictDoubleError) -> None:
        self.violations.append(msg)
        raise exc(msg)

    def ctx_stack(self) -> list:
        if not hasattr(self.tls, "stack"):
            self.tls.stack = []
        return self.tls.stack


_CURRENT: list = []  # the installed double's state (install() replaces the list via monkeypatch)


def current() -> State:
    if not _CURRENT:
        raise StrictDoubleError("the TensorRT/pycuda double is not installed")
    return _CURRENT[-1]
