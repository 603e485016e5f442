"""A strict test double of TensorRT and pycuda (tests only; never shipped in the package).

`install(monkeypatch, version)` puts fake `tensorrt`, `pycuda`, `pycuda.driver`
modules into `sys.modules` and an import hook for `pycuda.autoprimaryctx`
(which makes the primary context current in the importing thread) and
`pycuda.autoinit` (refused). See fake_trt.py and fake_pycuda.py for what fails loudly.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from dataclasses import dataclass

from trt_double import fake_pycuda, fake_trt
from trt_double import state as st
from trt_double.state import StrictDoubleError

VERSIONS = ("8.5.2", "8.6.1", "10.3.0", "11.4.0")
DEFAULT_GPU = ("Orin (nvgpu)", (8, 7))

__all__ = ["Double", "StrictDoubleError", "VERSIONS", "assert_clean", "install", "fake_trt", "fake_pycuda"]


class _AutoContextFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    _EXEC = {"pycuda.autoprimaryctx": fake_pycuda.exec_autoprimaryctx, "pycuda.autoinit": fake_pycuda.exec_autoinit}

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self._EXEC:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self._EXEC[module.__name__](module)


@dataclass
class Double:
    """Handle of one installed double."""

    state: st.State
    trt: types.ModuleType
    driver: types.ModuleType

    @property
    def violations(self) -> list:
        return self.state.violations

    @property
    def ops(self) -> list:
        return self.state.ops

    @property
    def builds(self) -> list:
        return self.state.builds

    def pending(self) -> int:
        """Operations queued on streams and not run yet."""
        return sum(len(s._pending) for s in getattr(self.state, "_streams", {}).values())

    def release_thread_context(self) -> None:
        """Forget this thread's context stack (as if a fresh thread)."""
        self.state.ctx_stack().clear()


def install(monkeypatch, version: str = "10.3.0", gpu: tuple = DEFAULT_GPU, dla_cores: int = 0,
            sm_count: int = 16, build: str = "", pci_bus_id: str = "0000:01:00.0") -> Double:
    """Install the double claiming TensorRT `version` (`trt.__version__`; `build`, default the same, is the
    library build engines are tied to) on GPU `gpu` = (name, (major, minor)) at PCI address `pci_bus_id`."""
    s = st.State(version=version, gpu=gpu[0], cc=tuple(gpu[1]), dla_cores=dla_cores, sm_count=sm_count,
                 build=build, pci_bus_id=pci_bus_id)
    monkeypatch.setattr(st, "_CURRENT", [s])
    trt = fake_trt.make_module(s)
    driver = fake_pycuda.make_driver_module()
    pkg = types.ModuleType("pycuda")
    pkg.__path__ = []
    pkg.driver = driver
    for name, mod in (("tensorrt", trt), ("pycuda", pkg), ("pycuda.driver", driver)):
        monkeypatch.setitem(sys.modules, name, mod)
    for name in ("pycuda.autoprimaryctx", "pycuda.autoinit"):
        # set then delete: undo removes whatever a test import leaves behind
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_AutoContextFinder()] + [f for f in sys.meta_path
                                                                     if not isinstance(f, _AutoContextFinder)])
    return Double(s, trt, driver)


def assert_clean(double: Double) -> None:
    """No strictness violation happened, and every TensorRT name the code looked up is one the static
    scan knows about (so the static name checks cover everything that ran)."""
    from trt_double import scan

    assert not double.violations, "strict double violations:\n" + "\n".join(double.violations)
    unknown = double.state.accessed - scan.all_trt_names()
    assert not unknown, f"TensorRT names used at run time but invisible to the static scan: {sorted(unknown)}"
