"""Static checks of the TensorRT code paths (no TensorRT here): every TensorRT name they use exists in
TensorRT 8.5, 8.6, 10.3 and 11.x unless it is version-gated in tensorrt/compat.py; no removed API anywhere in the
package; no pycuda.autoinit; Python 3.8 syntax where JetPack 5 runs the code."""
from __future__ import annotations

import ast
import importlib
import re

import pytest
from trt_double import names, scan

from edgebranchy.tensorrt import compat as trt_compat

LISTS = names.SUPPORTED
REMOVED = [r"execute_async_v2", r"\bbuild_engine\b", r"max_workspace_size", r"num_bindings", r"\bget_binding_",
           r"binding_is_input", r"set_binding_shape", r"\bget_profile_shape", r"int8_calibrator",
           r"platform_has_fast_fp16", r"max_batch_size", r"\.execute\(", r"\.execute_async\("]
#: identifiers in the package that share a spelling with a removed TensorRT name but are not TensorRT
#: ("NC": tegrastats' unconnected rail; "kernel_size": torch; "NCHW": a layout named in a message)
NOT_TENSORRT = frozenset({"NC", "kernel_size", "NCHW"})


def in_every_version(name: str) -> bool:
    return names.in_every_version(name)


def package_sources():
    return sorted(scan.PACKAGE.rglob("*.py"))


# ---------------------------------------------------------------- the name lists and their rules

def test_name_lists_on_known_cases():
    """Facts from the release notes, checked against the four exact lists (8.5.2, 8.6.1, 10.3.0, 11.1)."""
    assert all(names.listed("execute_async_v3", v) for v in LISTS)
    assert [names.listed("FP16", v) for v in LISTS] == [True, True, True, False]            # removed in 11.0
    assert [names.listed("EXPLICIT_BATCH", v) for v in LISTS] == [True, True, True, False]  # removed in 11.0
    assert [names.listed("PROFILE_SHARING_0806", v) for v in LISTS] == [False, True, True, False]
    assert [names.listed("builder_optimization_level", v) for v in LISTS] == [False, True, True, True]
    assert [names.listed("STRONGLY_TYPED", v) for v in LISTS] == [False, False, True, True]
    for removed in ("num_bindings", "get_binding_index", "build_engine", "max_workspace_size", "set_binding_shape"):
        assert names.listed(removed, "8.5") and not names.listed(removed, "10.3"), removed
    assert not names.listed("platform_has_fast_fp16", "11.1") and names.listed("platform_has_fast_fp16", "10.3")
    assert names.list_for("8.6.1") == "8.6" and names.list_for("11.4.0") == "11.1" and names.list_for("10.16") == "10.3"
    assert not names.exists_in("builder_optimization_level", "8.5.2")
    assert names.exists_in("builder_optimization_level", "8.6.1") and names.exists_in("STRONGLY_TYPED", "9.3.0")
    assert {"FP16", "EXPLICIT_BATCH", "execute_async_v2", "PROFILE_SHARING_0806"} <= names.removed_after_8()


def _identifiers(t: ast.AST):
    for node in ast.walk(t):
        if isinstance(node, ast.Attribute):
            yield node.attr, node.lineno
        elif isinstance(node, ast.Name):
            yield node.id, node.lineno
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            yield node.value, node.lineno


def test_names_removed_in_10_or_11_appear_only_in_the_compat_module():
    """A TensorRT name gone by 11.1 (present in 8.5, 8.6 or 10.3) anywhere in the package but compat.py:
    only distinctive spellings (an upper-case letter or an underscore) are checked, as plain words such
    as `range` or `precision` are not TensorRT's."""
    removed = names.removed_after_8()
    hits = []
    for path in package_sources():
        if path == scan.COMPAT:
            continue
        for name, line in _identifiers(ast.parse(path.read_text(encoding="utf-8"))):
            if name in removed and name not in NOT_TENSORRT and ("_" in name.strip("_") or name != name.lower()):
                hits.append(f"{path.relative_to(scan.ROOT)}:{line}: {name}")
    assert not hits, "TensorRT names removed in 10.x/11.x outside tensorrt/compat.py:\n" + "\n".join(hits)
    gated_removed = {n for n in scan.trt_module_names(scan.tree(scan.COMPAT)) if n in removed}
    assert gated_removed and gated_removed <= set(trt_compat.VERSION_GATED)


# ---------------------------------------------------------------- names used by the code

IDS = ["backend" if "backends" in m else m.rsplit(".", 1)[-1] for m in scan.MODULES]


@pytest.mark.parametrize("path", scan.FILES, ids=IDS)
def test_trt_module_names_exist_or_are_gated(path):
    used = scan.trt_module_names(scan.tree(path))
    assert "<dynamic getattr>" not in used, f"{path}: getattr/hasattr on trt with a computed name"
    for name, lines in used.items():
        if in_every_version(name):
            continue
        assert name in trt_compat.VERSION_GATED, (f"{path.name}:{lines}: trt.{name} is missing from TensorRT "
                                                  f"{[v for v in LISTS if not names.listed(name, v)]} "
                                                  "and is not in trt_compat.VERSION_GATED")
        assert path == scan.COMPAT, f"{path.name}:{lines}: version-gated name {name!r} outside tensorrt/compat.py"


@pytest.mark.parametrize("path,module", list(zip(scan.FILES, scan.MODULES)), ids=IDS)
def test_trt_object_attributes_are_declared_and_exist(path, module):
    declared = set(importlib.import_module(module).TRT_OBJECT_API)
    used = scan.receiver_names(scan.tree(path))
    undeclared = {n: ln for n, ln in used.items() if n not in declared}
    assert not undeclared, f"{path.name}: attributes on TensorRT objects missing from TRT_OBJECT_API: {undeclared}"
    source = path.read_text()
    for name in declared:
        assert re.search(rf"\.{name}\b", source), f"{path.name}: TRT_OBJECT_API lists {name!r}, which is not used"
        if not in_every_version(name):
            assert path == scan.COMPAT and name in trt_compat.VERSION_GATED, \
                f"{path.name}: {name!r} is not in every supported TensorRT version and not gated in trt_compat"


def test_version_gated_names_are_really_gated():
    for name, reason in trt_compat.VERSION_GATED.items():
        assert reason
        assert not in_every_version(name), f"{name!r} exists in every supported version: drop it from VERSION_GATED"
    for path in scan.FILES[1:]:
        t = scan.tree(path)
        used = {k: v[0] for k, v in scan.receiver_names(t).items()}              # on TensorRT objects
        used.update({k: v[0] for k, v in scan.trt_module_names(t).items()})  # trt.X, hasattr(trt..., "X")
        for name, line in used.items():
            assert name not in trt_compat.VERSION_GATED, \
                f"{path.name}:{line}: uses the version-gated name {name!r} (only tensorrt/compat.py may)"


def test_no_alias_hides_trt_names():
    """`d = trt.DataType; d.FLOAT` would escape the scan: names bound to trt attributes are not dereferenced."""
    for path in scan.FILES:
        t = scan.tree(path)
        aliases = {tgt.id for node in ast.walk(t) if isinstance(node, ast.Assign)
                   and isinstance(node.value, ast.Attribute) and scan.root_name(node.value) == "trt"
                   for tgt in node.targets if isinstance(tgt, ast.Name)}
        aliases |= {a.asname or a.name for node in ast.walk(t) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for a in node.names if (getattr(node, "module", None) or "").startswith("tensorrt")
                    or a.name.startswith("tensorrt")} - {"trt"}
        bad = [(n.lineno, scan.root_name(n)) for n in ast.walk(t)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases]
        assert not bad, f"{path.name}: attributes reached through aliases of trt names: {bad}"
        for node in ast.walk(t):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "tensorrt":
                        assert a.asname == "trt", f"{path.name}:{node.lineno}: import tensorrt as trt"


# ---------------------------------------------------------------- removed APIs, autoinit

def test_no_removed_tensorrt_api_anywhere_in_the_package():
    hits = []
    for path in package_sources():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits += [f"{path.relative_to(scan.ROOT)}:{i}: {pat}" for pat in REMOVED if re.search(pat, line)]
    assert not hits, "removed TensorRT API used:\n" + "\n".join(hits)


def test_removed_api_patterns_catch_what_they_should():
    samples = {"ctx.execute_async_v2(bindings, h)": True, "builder.build_engine(n, c)": True,
               "config.max_workspace_size = 1": True, "engine.get_binding_index('x')": True,
               "ctx.execute(1, b)": True, "ctx.execute_async(1, b, h)": True, "build_engines(a, s)": False,
               "ctx.execute_async_v3(h)": False, "engine.get_tensor_profile_shape('x', 0)": False}
    for text, bad in samples.items():
        assert any(re.search(p, text) for p in REMOVED) == bad, text


def test_pycuda_autoinit_is_never_imported_and_the_backend_retains_the_primary_context():
    """autoinit creates a private context; autoprimaryctx pushes the primary one on the importing thread for
    good (pycuda aborts a thread that ends with it pushed): the backend retains it and pushes it per call."""
    backend = scan.PACKAGE / "runtime" / "backends" / "tensorrt.py"
    assert ".retain_primary_context()" in backend.read_text()
    for path in package_sources():
        t = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(t):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                                    and "pycuda.autoinit" in a.value for a in node.args):
                mods = ["pycuda.autoinit"]
            assert "pycuda.autoinit" not in mods, f"{path}:{node.lineno}: pycuda.autoinit imported"
            # the doctor too: a library user may run it on a worker thread
            assert "pycuda.autoprimaryctx" not in mods, f"{path}:{node.lineno}: autoprimaryctx"


def test_tensorrt_and_pycuda_are_imported_lazily():
    for path in scan.FILES:
        for node in scan.tree(path).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] in ("tensorrt", "pycuda") for m in mods), \
                    f"{path.name}:{node.lineno}: module-level import of {mods}"


# ---------------------------------------------------------------- Python 3.8 (JetPack 5)

_TYPES = {"int", "str", "float", "bool", "bytes", "dict", "list", "tuple", "set", "frozenset", "type", "object"}
_NEW_METHODS = {"removeprefix", "removesuffix", "is_relative_to", "with_stem", "bit_count"}


def _annotation_nodes(t: ast.AST) -> set:
    ids = set()
    for node in ast.walk(t):
        anns = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            anns = [x.annotation for x in a.args + a.kwonlyargs + a.posonlyargs + [a.vararg, a.kwarg]
                    if x is not None and x.annotation is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            anns = [node.annotation]
        for ann in anns:
            if ann is not None:
                ids |= {id(n) for n in ast.walk(ann)}
    return ids


def _looks_like_type(n: ast.AST) -> bool:
    return ((isinstance(n, ast.Constant) and n.value is None) or (isinstance(n, ast.Name) and n.id in _TYPES)
            or isinstance(n, ast.Subscript) or (isinstance(n, ast.Attribute) and n.attr[:1].isupper()))


def py38_problems(t: ast.AST) -> list:
    """Runtime uses of 3.9/3.10-only features outside annotations."""
    in_ann = _annotation_nodes(t)
    out = []
    for node in ast.walk(t):
        if id(node) in in_ann:
            continue
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and (
                _looks_like_type(node.left) or _looks_like_type(node.right)):
            out.append(f"{line}: `X | Y` type union outside an annotation (3.10+)")
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in _TYPES:
            out.append(f"{line}: {node.value.id}[...] outside an annotation (3.9+)")
        if isinstance(node, ast.Attribute) and node.attr in _NEW_METHODS:
            out.append(f"{line}: .{node.attr} is 3.9+")
        if isinstance(node, ast.Call):
            kws = {k.arg for k in node.keywords}
            if isinstance(node.func, ast.Name) and node.func.id == "zip" and "strict" in kws:
                out.append(f"{line}: zip(strict=) is 3.10+")
            if scan.root_name(node.func) == "dataclass" and kws & {"slots", "kw_only"}:
                out.append(f"{line}: dataclass(slots=/kw_only=) is 3.10+")
    return out


@pytest.mark.parametrize("path", scan.FILES, ids=IDS)
def test_python38_syntax(path):
    src = path.read_text(encoding="utf-8")
    t = ast.parse(src, feature_version=(3, 8))  # match statements, parenthesised context managers, ...
    assert any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations"
               for a in n.names) for n in t.body), "needs `from __future__ import annotations`"
    problems = py38_problems(t)
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_python38_checker_catches_310_syntax():
    for src in ["x = int | None\n", "y = isinstance(1, int | str)\n", "z = list[int]\n", "'a'.removeprefix('b')\n",
                "zip(a, b, strict=True)\n", "@dataclass(slots=True)\nclass A: pass\n"]:
        assert py38_problems(ast.parse(src)), src
    assert not py38_problems(ast.parse("def f(a: int | None) -> list[int]:\n    b: dict[str, int] = {}\n"))
    assert not py38_problems(ast.parse("flags = 0\nflags |= 1 << 3\nm = a | b\n"))
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 8))


# ---------------------------------------------------------------- layout (loader/runner model)

def _edgebranchy_imports(path) -> set:
    mods = set()
    for node in ast.walk(scan.tree(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgebranchy"):
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods |= {a.name for a in node.names if a.name.startswith("edgebranchy")}
    return mods


RUN_SIDE = {"edgebranchy.tensorrt.load", "edgebranchy.tensorrt.device", "edgebranchy.tensorrt.lanes",
            "edgebranchy.tensorrt.memory", "edgebranchy.tensorrt.single", "edgebranchy.tensorrt.compat",
            "edgebranchy.artifact.engines"}


def test_runtime_backend_imports_only_load_device_and_engine_records():
    """The runner side never pulls in the builder or the exporter (Polygraphy: loaders apart from runners): the
    backend imports the loader, the device facts, its lanes and memory modules and the engine records."""
    mods = _edgebranchy_imports(scan.PACKAGE / "runtime" / "backends" / "tensorrt.py")
    trt_side = {m for m in mods if m.startswith(("edgebranchy.tensorrt", "edgebranchy.artifact.engines"))}
    assert trt_side <= RUN_SIDE
    assert "edgebranchy.tensorrt.load" in trt_side
    for helper in ("lanes.py", "memory.py", "single.py"):
        helper_mods = _edgebranchy_imports(scan.TRT / helper)
        assert "edgebranchy.tensorrt.build" not in helper_mods and not any(m.startswith("edgebranchy.export")
                                                                          for m in helper_mods)
    assert not [m for m in mods if m.startswith("edgebranchy.export.") and m != "edgebranchy.export.artifact"
                or m == "edgebranchy.tensorrt.build"], mods
    load_mods = _edgebranchy_imports(scan.TRT / "load.py")
    assert "edgebranchy.tensorrt.build" not in load_mods and not any(m.startswith("edgebranchy.export") for m in load_mods)
