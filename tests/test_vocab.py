"""The run vocabulary (edgebranchy/vocab.py) is written once: precisions, forms, backend names and capabilities,
and every backend's declared options (runtime/backends/declared.py); the places that check them take them from
there."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from eb_testutil import ROOT

from edgebranchy import vocab
from edgebranchy.errors import EdgeBranchyError

PKG = ROOT / "edgebranchy"
# word sets that are the vocabulary: a literal tuple/list/set holding two or more of one of them restates it
WORD_SETS = {"precisions": set(vocab.PRECISIONS) | set(vocab.NOT_YET), "forms": set(vocab.FORMS),
             "backends": set(vocab.BACKEND_NAMES)}


def restated(path, root=ROOT) -> list[str]:
    """Literal collections of two or more vocabulary words of one kind in a source file (line: words)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for kind, vocabulary in WORD_SETS.items():
                if len(words) >= 2 and words <= vocabulary:  # ("torch", "onnx", "onnxruntime") names packages
                    out.append(f"{path.relative_to(root)}:{node.lineno}: {kind} {sorted(words & vocabulary)}")
    return out


def test_the_checker_finds_a_restated_list(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('CHOICES = ["fp32", "fp16"]\nOK = ("fp32", "x")\nB = {"torch", "tensorrt"}\nP = ("torch", "onnx")\n')
    assert restated(f, tmp_path) == ["m.py:1: precisions ['fp16', 'fp32']", "m.py:3: backends ['tensorrt', 'torch']"]


def test_nothing_restates_the_vocabulary():
    found = [hit for p in sorted(PKG.rglob("*.py")) if p.name != "vocab.py" for hit in restated(p)]
    assert found == []


def test_backend_registry_declarations_and_capabilities_agree():
    from edgebranchy.runtime.backends import base, declared

    assert sorted(base._REGISTRY) == list(vocab.BACKEND_NAMES) == sorted(declared.OPTIONS) == base.backend_names()
    for name in vocab.BACKEND_NAMES:
        assert base.backend_options(name) == declared.declared(name)
    ort = base.get_backend_class("onnxruntime")
    assert ort.OPTIONS is declared.ONNXRUNTIME and not vocab.can_speculate("onnxruntime")
    assert vocab.can_speculate("tensorrt") and vocab.can_speculate("torch")
    with pytest.raises(EdgeBranchyError, match="unknown backend 'nope'; choose one of onnxruntime, tensorrt, torch"):
        base.get_backend_class("nope")
    with pytest.raises(EdgeBranchyError, match="unknown backend"):
        base.backend_options("nope")


def test_the_backend_modules_take_their_options_from_the_declarations():
    for mod, name in (("onnxruntime", "ONNXRUNTIME"), ("torch", "TORCH"), ("tensorrt", "TENSORRT")):
        tree = ast.parse((PKG / "runtime" / "backends" / f"{mod}.py").read_text(encoding="utf-8"))
        assigned = [t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name) and t.id == "OPTIONS" and not isinstance(n.value, ast.Name)]
        assert not assigned, f"{mod}.py declares its own OPTIONS"
        imports = [a for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module ==
                   "edgebranchy.runtime.backends.declared" for a in n.names]
        assert any(a.name == name and a.asname == "OPTIONS" for a in imports), mod


def test_precision_rule_and_its_messages():
    assert vocab.check_precision("fp16") == "fp16"
    assert vocab.check_precision("int8") == "int8"
    with pytest.raises(EdgeBranchyError, match=r'^where must be "fp32", "fp16" or "int8", got \'bf16\'$'):
        vocab.check_precision("bf16", "where")
    with pytest.raises(EdgeBranchyError, match="form must be one of auto, segments, single-graph, got 'x'"):
        vocab.check_form("x")


def test_every_precision_check_uses_the_rule():
    from edgebranchy.tensorrt import compat, settings

    for check in (lambda p: compat.plan_build((10, 3, 0), p, 3),
                  lambda p: settings.check_precision(p),
                  lambda p: settings.TensorRTSettings.from_table({"precision": p, "workspace_mb": 1,
                                                                  "builder_optimization_level": 3, "max_batch": 1,
                                                                  "dla_core": -1, "gpu_fallback": False})):
        with pytest.raises(EdgeBranchyError, match='must be "fp32", "fp16" or "int8", got .bf16.'):
            check("bf16")


def test_the_cli_offers_exactly_the_vocabulary():
    import argparse

    from edgebranchy.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for cmd in ("export", "calibrate"):
        assert tuple(sub[cmd]._option_string_actions["--precision"].choices) == vocab.PRECISIONS, cmd
    bench = sub["bench"]
    assert bench.parse_args(["a", "--backend", ",".join(vocab.BACKEND_NAMES)]).backend == list(vocab.BACKEND_NAMES)
    assert bench.parse_args(["a", "--form", ",".join(vocab.FORMS)]).form == list(vocab.FORMS)


def test_the_vocabulary_and_the_declarations_import_no_numpy():
    code = ("import sys\nimport edgebranchy.vocab, edgebranchy.runtime.backends.declared\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'onnxruntime')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
