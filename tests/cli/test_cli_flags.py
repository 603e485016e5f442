"""Library errors name settings as the Python API spells them (`batch_size`); the CLI shows its flags."""
from __future__ import annotations

import argparse

import pytest

from edgebranchy.bench.config import BenchConfig, check_config, check_outputs
from edgebranchy.cli import build_parser, main
from edgebranchy.cli._flags import FLAGS, with_flags
from edgebranchy.errors import EdgeBranchyError


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_setting_maps_to_a_flag_some_command_has():
    flags = {s for p in _subparsers().values() for a in p._actions for s in a.option_strings}
    assert set(FLAGS.values()) <= flags, sorted(set(FLAGS.values()) - flags)


def test_with_flags_uses_only_the_flags_of_the_command():
    bench, profiles = _subparsers()["bench"], _subparsers()["profiles"]
    msg = "`min_window_s` must be >= 0; pass `force`; run `edgebranchy export` first"
    assert with_flags(msg, bench) == "--min-window must be >= 0; pass --force; run `edgebranchy export` first"
    assert with_flags(msg, profiles) == msg  # `profiles` has neither flag: the setting's name stays


@pytest.mark.parametrize("setting,value", [("batch_size", 0), ("batch_size", [1, 0]), ("samples", 0),
                                           ("trials", 1.5), ("warmup", -1), ("min_window_s", float("nan")),
                                           ("idle_s", -1.0), ("backend", []), ("form", [])])
def test_bench_config_errors_name_the_setting_not_a_flag(setting, value):
    with pytest.raises(EdgeBranchyError) as e:
        check_config(BenchConfig(artifact="a", out="r.json", **{setting: value}))
    assert f"`{setting}`" in str(e.value) and "--" not in str(e.value)


def test_bench_refusal_names_the_setting_and_the_cli_its_flag(tiny_artifact, tmp_path, capsys):
    out = tmp_path / "r.json"
    with pytest.raises(EdgeBranchyError) as e:
        check_outputs(BenchConfig(artifact=str(tiny_artifact), out=str(out), resume=True))
    assert str(e.value).endswith("run bench without `resume`")
    assert main(["bench", str(tiny_artifact), "--profile", "x86-cpu", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"edgebranchy bench: error: no trial log at {out}.jsonl to resume: run bench without --resume"


def _raised_literals(tree):
    """The string pieces of each `raise EdgeBranchyError(...)` in a module's syntax tree."""
    import ast
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and getattr(node.exc.func, "id", None) == "EdgeBranchyError":
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def test_no_library_error_names_a_cli_flag():
    """Outside cli/, an error names the setting (`force`); only a whole command line it suggests
    (`edgebranchy export ... --precision fp16`) may carry a flag."""
    import ast
    import re
    from pathlib import Path

    import edgebranchy
    flags = {s for p in _subparsers().values() for a in p._actions for s in a.option_strings if s.startswith("--")}
    root = Path(edgebranchy.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if "cli" in path.relative_to(root).parts:
            continue
        for line, text in _raised_literals(ast.parse(path.read_text())):
            if "edgebranchy " in text:  # a command line the user is told to run
                continue
            named = [f for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text) if f in flags]
            if named:
                found.append(f"{path.relative_to(root)}:{line}: {named}")
    assert not found, found
