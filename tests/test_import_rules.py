"""The layering rules of docs/architecture.md, checked on the source (every import, lazy ones too) and,
where cheap, on what importing a module really loads.

Device path: the runner, the prediction and pipeline modules, the ONNX Runtime and TensorRT
backends and everything under bench/, measure/ and device/ never import torch, edgebranchy.export,
edgebranchy.train or edgebranchy.models (the torch backend runs the model itself and may import models).
The report reads results files only: no export, train, models or runtime.
Layers: measure/ (the instruments) imports nothing of the package but artifact/ and util/; device/
(profiles, doctor) stands above measure/, bench/ above both; none of them imports cli/, report/ or remote/.

No import cycles (the rule, checked below on the source with `ast`):
1. Module-level imports (what importing a module runs: top-level statements, class bodies, top-level
   if/try blocks; `if TYPE_CHECKING:` blocks excluded, they never run) are acyclic across the package:
   a cycle there makes the import order matter and fails with a half-initialised module.
2. Every import counts (lazy ones inside functions, type-only ones too) between modules: no cycle, except
   the ones listed in KNOWN_CYCLES (data/ and models/ dispatch to modules that import their types back
   lazily), a list that can only shrink.
3. Every import counts between packages (bench, measure, device, runtime, ...: the first name under
   edgebranchy/): the packages form layers, so no package imports one that imports it back (bench and
   measure, device and measure never both ways); PENDING_EDGES lists the one upward import another
   change removes.
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
               *sorted(str(p.relative_to(PKG)) for pkg in ("bench", "measure", "device")
                       for p in (PKG / pkg).rglob("*.py"))]
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
    assert "bench/session.py" in DEVICE_PATH and "measure/power/meter.py" in DEVICE_PATH
    assert "device/doctor_artifact.py" in DEVICE_PATH
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


LAYERS = {  # package -> the packages of edgebranchy it must not import
    "measure": ("bench", "device", "runtime", "exits", "data", "tensorrt", "report", "cli", "remote"),
    "device": ("bench", "report", "cli", "remote"),
    "bench": ("report", "cli", "remote"),
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_of_bench_measure_and_device(package):
    files = sorted(str(p.relative_to(PKG)) for p in (PKG / package).rglob("*.py"))
    bad = _violations(files, tuple(f"edgebranchy.{q}" for q in LAYERS[package]))
    assert files and not bad, f"{package}/ imports a layer above it: {sorted(bad)}"


# ---------------------------------------------------------------- cycles

#: cycles of rule 2 that exist today (each a set of modules); each must still be there, so the list only shrinks
KNOWN_CYCLES = [
    {"edgebranchy.data.datasets", "edgebranchy.data.imagefolder", "edgebranchy.data.splits"},
    {"edgebranchy.models.custom", "edgebranchy.models.fx"},
]
#: package edges of rule 3 that another change removes (exits/ -> runtime/: device calibration moves out of exits/)
PENDING_EDGES: set = set()


def module_names(root: Path = PKG, prefix: str = "edgebranchy") -> dict[str, Path]:
    """Every module of the package under `root`, by dotted name (a package by its own name)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = [prefix, *path.relative_to(root).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)


def import_edges(path: Path, modules: dict[str, Path], top_level_only: bool) -> set[str]:
    """The package's modules that `path` imports (`from a import b` is a.b where that is a module, else a);
    with `top_level_only`, only what importing the file runs."""
    def nearest(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                                   or _type_checking(child)):
                continue
            if isinstance(child, ast.Import):
                found.update(nearest(a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.update(nearest(f"{child.module}.{a.name}") for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found - {None}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def module_graph(top_level_only: bool, root: Path = PKG, prefix: str = "edgebranchy") -> dict[str, set[str]]:
    modules = module_names(root, prefix)
    return {m: import_edges(p, modules, top_level_only) - {m} for m, p in modules.items()}


def package_of(module: str) -> str:
    """bench for edgebranchy.bench.session; errors for edgebranchy.errors; edgebranchy for the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, targets in graph.items():
        out.setdefault(package_of(m), set()).update(package_of(t) for t in targets if package_of(t) != package_of(m))
    return out


def test_the_cycle_checker_finds_cycles_lazy_or_not(tmp_path):
    pkg = tmp_path / "p"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from p.a import y\n")
    (pkg / "a" / "y.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from p.a.x import X\n"
                                     "def f():\n    from p.b import z\n")
    (pkg / "b.py").write_text("from p.a.x import X\n")
    top, every = module_graph(True, pkg, "p"), module_graph(False, pkg, "p")
    assert top["p.a.x"] == {"p.a.y"} and top["p.a.y"] == set() and cycles(top) == []
    assert every["p.a.y"] == {"p.a.x", "p.b"} and cycles(every) == [{"p.a.x", "p.a.y", "p.b"}]
    assert cycles(package_graph(every)) == [{"a", "b"}]


def test_module_level_imports_are_acyclic():
    assert cycles(module_graph(top_level_only=True)) == []


def test_no_module_cycles_even_through_lazy_imports():
    found = cycles(module_graph(top_level_only=False))
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, f"import cycles (lazy imports count): {[sorted(c) for c in new]}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"KNOWN_CYCLES lists cycles that are gone: remove {gone}"


def test_packages_form_layers():
    graph = package_graph(module_graph(top_level_only=False))
    assert "measure" in graph["bench"] and "bench" not in graph["measure"]
    stale = {e for e in PENDING_EDGES if e[1] not in graph.get(e[0], set())}
    assert not stale, f"PENDING_EDGES lists package imports that are gone: remove {sorted(stale)}"
    for a, b in PENDING_EDGES:
        graph[a].discard(b)
    assert cycles(graph) == [], f"packages that import each other: {[sorted(c) for c in cycles(graph)]}"


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
      "edgebranchy.runtime.backends.onnxruntime", "edgebranchy.bench.session", "edgebranchy.bench.run",
      "edgebranchy.bench.trials", "edgebranchy.bench.document", "edgebranchy.measure.power.select",
      "edgebranchy.device.detection", "edgebranchy.device.doctor_artifact"], BUILD_SIDE),
    (["edgebranchy.report", "edgebranchy.report.render", "edgebranchy.report.details_table", "edgebranchy.report.plots"],
     REPORT_FORBIDDEN),
    (["edgebranchy.calibration", "edgebranchy.calibration.artifact_source", "edgebranchy.runtime.full_chain"],
     ("torch",)),
], ids=["device-path", "report", "calibration"])
def test_importing_loads_nothing_forbidden(modules, forbidden):
    code = CHECK_LOADED.format(forbidden=forbidden)
    r = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
