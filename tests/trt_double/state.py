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
    build: str = ""                   # the library's full build ("10.3.0.26"); pip wheels report only `version`
    pci_bus_id: str = "0000:01:00.0"  # what cuDeviceGetPCIBusId says for CUDA device 0
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
            self.tls.stack = _ThreadStack(self)
        return self.tls.stack


class _ThreadStack(list):
    """pycuda's per-thread context stack (PC `context_stack`, a boost::thread_specific_ptr): destroyed when its
    thread ends, and `context_stack::~context_stack` (cuda.hpp:901-917) prints "The context stack was not empty
    upon module cleanup" and calls abort() when a context is still on it. The double records that abort."""

    def __init__(self, state: "State"):
        super().__init__()
        self._state = state

    def __del__(self):
        if len(self):
            self._state.violations.append("pycuda abort(): a thread ended with a context still pushed (the context "
                                          "stack was not empty upon cleanup; cuda.hpp context_stack::~context_stack)")


_CURRENT: list = []  # the installed double's state (install() replaces the list via monkeypatch)


def current() -> State:
    if not _CURRENT:
        raise StrictDoubleError("the TensorRT/pycuda double is not installed")
    return _CURRENT[-1]
