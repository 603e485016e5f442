"""The layering rules of docs/architecture.md, checked on the source (every import, lazy ones too) and,
where cheap, on what importing a module really loads.

Device path: the runner, the prediction and pipeline modules, the ONNX Runtime and TensorRT
backends and everything under measure/ never import torch, edgebranchy.export, edgebranchy.train
or edgebranchy.models (the torch backend runs the model itself and may import models).
The report reads results files only: no export, train, models or runtime.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from eb_testutil import ROOT

PKG = ROOT / "edgebranchy"
BUILD_SIDE = ("torch", "edgebranchy.export", "edgebranchy.train", "edgebranchy.models")
DEVICE_PATH = ["tensorrt/load.py", "tensorrt/device.py", "tensorrt/settings.py", "tensorrt/compat.py",
               "tensorrt/lanes.py", "tensorrt/memory.py", "tensorrt/single.py",
               "artifact/manifest.py", "artifact/engines.py", "artifact/results.py", "artifact/calibration.py",
               "runtime/runner.py", "runtime/prediction.py", "runtime/pipeline.py", "runtime/backends/base.py",
               "runtime/backends/options.py", "runtime/backends/declared.py", "runtime/backends/onnxruntime.py",
               "runtime/backends/tensorrt.py", "runtime/full_chain.py", "vocab.py",
               *sorted(str(p.relative_to(PKG)) for p in (PKG / "measure").rglob("*.py"))]
REPORT = sorted(str(p.relative_to(PKG)) for p in (PKG / "report").rglob("*.py"))
REPORT_FORBIDDEN = BUILD_SIDE + ("edgebranchy.runtime",)

# Imports that break a rule today and are being moved by another change; each entry must still be
# needed (a stale one fails below), so the list can only shrink.
# (file, package): any import of that package or below it from that file.
PENDING: set[tuple[str, str]] = set()


def imports_of(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` in the file names (at any depth, lazy ones included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}   # `from edgebranchy import export`
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package uses absolute ones")
    return found


def _hits(mod: str, forbidden: tuple[str, ...]) -> bool:
    return any(mod == f or mod.startswith(f + ".") for f in forbidden)


def _violations(files: list[str], forbidden: tuple[str, ...]) -> set[tuple[str, str]]:
    out = set()
    for rel in files:
        for mod in imports_of(PKG / rel):
            if _hits(mod, forbidden):
                out.add((rel, mod))
    return out


def test_the_checker_sees_lazy_and_from_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import numpy\n\ndef g():\n    from edgebranchy import export\n    import torch.nn as nn\n")
    mods = imports_of(f)
    assert {"numpy", "edgebranchy.export", "torch.nn"} <= mods
    assert _hits("torch.nn", BUILD_SIDE) and _hits("edgebranchy.export", BUILD_SIDE)
    assert not _hits("edgebranchy.exports_like", BUILD_SIDE) and not _hits("torchvision", BUILD_SIDE)


def test_device_path_never_imports_the_build_side():
    assert all((PKG / rel).is_file() for rel in DEVICE_PATH), "a file of the device path moved: update this test"
    assert "measure/bench.py" in DEVICE_PATH and "measure/power/base.py" in DEVICE_PATH
    bad = _violations(DEVICE_PATH, BUILD_SIDE)
    pending = {(rel, mod) for rel, mod in bad if any(rel == f and _hits(mod, (pkg,)) for f, pkg in PENDING)}
    assert bad - pending == set(), f"device-path modules import the build side: {sorted(bad - pending)}"
    stale = {(f, pkg) for f, pkg in PENDING if (PKG / f).is_file() and not any(rel == f and _hits(mod, (pkg,))
                                                                             for rel, mod in bad)}
    assert not stale, f"PENDING lists imports that are gone: remove {sorted(stale)}"


def test_torch_backend_may_import_models_but_not_export_or_train():
    bad = _violations(["runtime/backends/torch.py"], ("edgebranchy.export", "edgebranchy.train"))
    assert not bad, sorted(bad)


def test_report_reads_results_files_only():
    assert REPORT
    bad = _violations(REPORT, REPORT_FORBIDDEN)
    assert not bad, f"report modules import more than the results contract: {sorted(bad)}"


def test_artifact_contracts_stand_below_everything():
    files = sorted(str(p.relative_to(PKG)) for p in (PKG / "artifact").rglob("*.py"))
    above = ("torch", "onnx", "edgebranchy.export", "edgebranchy.train", "edgebranchy.models", "edgebranchy.runtime",
             "edgebranchy.measure", "edgebranchy.report", "edgebranchy.exits", "edgebranchy.cli")
    assert files and not _violations(files, above)


EXITS_FORBIDDEN = ("torch", "onnx", "onnxruntime", "edgebranchy.runtime", "edgebranchy.artifact", "edgebranchy.data",
                   "edgebranchy.train", "edgebranchy.export", "edgebranchy.tensorrt", "edgebranchy.measure",
                   "edgebranchy.calibration", "edgebranchy.report", "edgebranchy.remote", "edgebranchy.cli")
# the segment plan's cost arithmetic (no torch): which side exits a search may switch off
EXITS_ALLOWED = {("exits/pruning.py", "edgebranchy.models.segments"),
                 ("exits/pruning.py", "edgebranchy.models.segments.fused_costs")}
BELOW_CALIBRATION = ("runtime", "train", "exits", "export", "models", "data", "artifact", "util", "tensorrt")


def test_exits_is_numpy_only():
    """exits/ is the numbers of calibration and the exit rule: no backend, artifact, results file or data set."""
    files = sorted(str(p.relative_to(PKG)) for p in (PKG / "exits").rglob("*.py"))
    bad = _violations(files, EXITS_FORBIDDEN + ("edgebranchy.models",)) - EXITS_ALLOWED
    assert files and not bad, f"exits/ imports above numpy: {sorted(bad)}"


def test_calibration_stands_above_runtime_and_train():
    files = sorted(str(p.relative_to(PKG)) for d in BELOW_CALIBRATION for p in (PKG / d).rglob("*.py"))
    assert files and not _violations(files, ("edgebranchy.calibration",))


CHECK_LOADED = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in {forbidden!r}))
print(bad)
sys.exit(1 if bad else 0)
"""


@pytest.mark.parametrize("modules,forbidden", [
    (["edgebranchy.runtime.runner", "edgebranchy.runtime.pipeline", "edgebranchy.runtime.prediction",
      "edgebranchy.runtime.backends.onnxruntime", "edgebranchy.measure.bench", "edgebranchy.measure.trials",
      "edgebranchy.measure.results", "edgebranchy.measure.power.select"], BUILD_SIDE),
    (["edgebranchy.report", "edgebranchy.report.render", "edgebranchy.report.summary", "edgebranchy.report.plots"],
     REPORT_FORBIDDEN),
    (["edgebranchy.calibration", "edgebranchy.calibration.artifact_source", "edgebranchy.runtime.full_chain"],
     ("torch",)),
], ids=["device-path", "report", "calibration"])
def test_importing_loads_nothing_forbidden(modules, forbidden):
    code = CHECK_LOADED.format(forbidden=forbidden)
    r = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
