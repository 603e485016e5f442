"""The TensorRT code and the test double checked against the real Python bindings of TensorRT 8.6.1, 10.3.0 and
11.4.0 (imported without a GPU: trt_double/real_bindings.py). Names are class-qualified here: every class,
method, attribute and enum member the package uses, and every one the double defines, exists in the real module
of each version the double claims (unless version-gated, when presence must match the name lists), with the
real pybind signature (parameter names and which have defaults; calls in the package fit one overload)."""
from __future__ import annotations

import ast
import inspect

import pytest
from trt_double import install, names, real_bindings, scan

from edgebranchy.tensorrt import compat as trt_compat

VERSIONS = tuple(real_bindings.WHEELS)


@pytest.fixture(scope="session")
def real():
    """{version: description} of the real modules (each imported in a subprocess)."""
    return {v: real_bindings.require(v) for v in VERSIONS}


@pytest.mark.parametrize("ci,outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_unavailable_bindings_fail_in_ci_and_skip_elsewhere(monkeypatch, tmp_path, ci, outcome):
    """With the registry unreachable (pip pointed at an empty index) the conformance test fails loudly under
    CI=true and is skipped with the reason elsewhere."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("EDGEBRANCHY_TRT_BINDINGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "empty").as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(outcome, match="pip could not download tensorrt-cu12-bindings==10.3.0"):
        real_bindings.require("10.3.0")


def _member(desc: dict, path: list):
    """The description of `path` (["BuilderFlag", "TF32"]) in a real module, or None."""
    head, rest = path[0], path[1:]
    if not rest:
        return desc["classes"].get(head) is not None and {"kind": "class"} or (
            {"kind": desc["module"][head]} if head in desc["module"] else None)
    cls = head
    while len(rest) > 1 and f"{cls}.{rest[0]}" in desc["classes"]:
        cls, rest = f"{cls}.{rest[0]}", rest[1:]
    members = desc["classes"].get(cls)
    if members is None or len(rest) > 1:
        return None
    return members.get(rest[0])


def _fits(call: tuple, sigs: list, self_given: bool = False) -> bool:
    """A call with (positional count, keyword names) fits one overload of `sigs`."""
    npos, kws = call
    npos -= self_given
    for params in sigs:
        names_ = [p for p, _ in params]
        required = [p for p, default in params if not default]
        if npos > len(names_) or any(k not in names_[npos:] for k in kws):
            continue
        given = set(names_[:npos]) | set(kws)
        if all(r in given for r in required):
            return True
    return False


def _uses():
    for path, mod in zip(scan.FILES, scan.MODULES):
        tree = scan.parented(scan.tree(path))
        for chain, line, call in scan.qualified_uses(tree):
            yield f"{path.name}:{line}", chain, call


def _gated(chain: list) -> bool:
    return any(n in trt_compat.VERSION_GATED for n in chain)


def _gated_path(chain: list, version: str):
    """None where `chain` is not gated by its full path (compat.GATED_PATHS), else whether `version` has it."""
    gate = trt_compat.GATED_PATHS.get(".".join(chain[-2:]))
    if gate is None:
        return None
    first, gone, _ = gate
    return first <= trt_compat.parse_version(version) < gone


@pytest.mark.parametrize("version", VERSIONS)
def test_every_tensorrt_member_the_package_uses_exists_with_a_fitting_signature(real, version):
    desc = real[version]
    problems, checked = [], 0
    for where, chain, call in _uses():
        m = _member(desc, chain)
        has = _gated_path(chain, version)
        if has is not None:  # gated by its full path: present exactly in the versions compat declares
            if (m is not None) != has:
                problems.append(f"{where}: trt path {'.'.join(chain)} is {'present' if m else 'absent'} in the real "
                                f"{version} module but compat.GATED_PATHS says {'present' if has else 'absent'}")
            continue
        if _gated(chain):  # used behind compat's version decision: present exactly where the name lists say
            listed = all(names.exists_in(n, version) for n in chain if n in trt_compat.VERSION_GATED)
            if (m is not None) != listed:
                problems.append(f"{where}: trt path {'.'.join(chain)} is {'present' if m else 'absent'} in the real "
                                f"{version} module but the name lists say {'present' if listed else 'absent'}")
            continue
        checked += 1
        if m is None:
            problems.append(f"{where}: {'.'.join(chain)} does not exist in the real TensorRT {version} module")
            continue
        if call is not None:
            if m["kind"] == "class":
                init = desc["classes"][chain[0]].get("__init__", {})
                sigs, self_given = init.get("signatures", []), False
            else:
                sigs, self_given = m.get("signatures"), chain[-1] == "__init__"
            if sigs is not None and sigs and not _fits(call, sigs, self_given):
                problems.append(f"{where}: {'.'.join(chain)} called with {call[0]} positional and keywords "
                                f"{list(call[1])}; the real {version} signatures are {sigs}")
    assert checked > 60, f"only {checked} uses found: the scan lost them"
    assert not problems, "\n".join(problems)


def _double_classes(trt) -> dict:
    """The double module's classes (nested enum classes as "ILogger.Severity"), read without strict lookups."""
    out = {}
    for name, obj in vars(trt).items():
        if isinstance(obj, type) and not name.startswith("_"):
            out[name] = obj
            for sub, inner in vars(obj).items():
                if isinstance(inner, type) and not sub.startswith("_"):
                    out[f"{name}.{sub}"] = inner
    return out


def _double_members(cls: type, version: str) -> dict:
    """Public members the double's class defines itself (and `__init__`), those the claimed version has."""
    out = {}
    for name, value in vars(cls).items():
        if (name.startswith("_") and name != "__init__") or isinstance(value, type):
            continue
        if name != "__init__" and not names.exists_in(name, version):
            continue  # the double refuses it for this version (strict.py); the gated test checks the real module
        out[name] = value
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_the_double_matches_the_real_module(real, monkeypatch, version):
    """Every class, method, property and enum member of the double (as built for this version) exists in the real
    module, methods with the real parameter names and defaults, settable properties settable there too."""
    desc = real[version]
    d = install(monkeypatch, version)
    problems, checked = [], 0
    for cname, cls in _double_classes(d.trt).items():
        real_members = desc["classes"].get(cname)
        if real_members is None:
            problems.append(f"class {cname}: not in the real {version} module")
            continue
        for m, value in _double_members(cls, version).items():
            checked += 1
            rm = real_members.get(m)
            if rm is None:
                problems.append(f"{cname}.{m}: not in the real {version} module")
            elif type(value).__name__ == "EnumValue":
                if rm["kind"] not in ("enum", "value"):
                    problems.append(f"{cname}.{m}: an enum member in the double, a {rm['kind']} in TensorRT")
            elif isinstance(value, property):
                if rm["kind"] != "property":
                    problems.append(f"{cname}.{m}: a property in the double, a {rm['kind']} in TensorRT {version}")
                elif value.fset is not None and not rm["settable"]:
                    problems.append(f"{cname}.{m}: settable in the double, read-only in TensorRT {version}")
            elif inspect.isfunction(value):
                params = list(inspect.signature(value).parameters.values())[1:]
                mine = [[p.name, p.default is not inspect.Parameter.empty] for p in params]
                if rm["kind"] != "method":
                    problems.append(f"{cname}.{m}: a method in the double, a {rm['kind']} in TensorRT {version}")
                elif rm["signatures"] and mine not in rm["signatures"]:
                    problems.append(f"{cname}.{m}{tuple(p for p, _ in mine)}: the real {version} signatures are "
                                    f"{rm['signatures']}")
    assert checked > 80, f"only {checked} members compared"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_name_lists_agree_with_the_real_module(real, monkeypatch, version):
    """The version-gated names (tensorrt/compat.py) and every name the double defines are present in the real
    module exactly where the double's name lists say, so the double refuses what the real TensorRT lacks and
    nothing it has."""
    desc = real[version]
    everything = set(desc["module"]) | {c.split(".")[-1] for c in desc["classes"]} | {
        m for ms in desc["classes"].values() for m in ms}
    d = install(monkeypatch, version)
    known = {n for cls in _double_classes(d.trt).values() for n in vars(cls) if not n.startswith("_")}
    known |= {c.split(".")[-1] for c in _double_classes(d.trt)} | set(trt_compat.VERSION_GATED)
    wrong = sorted(n for n in known if (n in everything) != names.exists_in(n, version))
    assert not wrong, f"the name lists say otherwise than the real {version} module about {wrong}"


def test_the_scan_sees_class_qualified_uses():
    t = scan.parented(ast.parse("trt.BuilderFlag.TF32\nctx.set_input_shape('x', (1, 2))\n"
                                "hasattr(trt.BuilderFlag, 'FP16')\ntrt.Runtime(logger)\n"))
    got = sorted((tuple(c), call) for c, _, call in scan.qualified_uses(t))
    assert got == sorted([(("BuilderFlag", "TF32"), None), (("IExecutionContext", "set_input_shape"), (2, ())),
                          (("BuilderFlag", "FP16"), None), (("BuilderFlag",), None), (("Runtime",), (1, ()))]), got
