"""Every subcommand's --help: each option has help text and shows its real default once.

Walks the real parser (`edgebranchy.cli.build_parser`), so a new command or option is checked without
being listed here.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from eb_testutil import ROOT

from edgebranchy.cli import build_parser
from edgebranchy.cli._args import DefaultsFormatter, shown_default


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = sorted(_subparsers())


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """What --help prints for one option (the help text with %(default)s etc. expanded)."""
    return parser._get_formatter()._expand_help(action)


def problems(name: str, parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction) or a.help is argparse.SUPPRESS:
            continue  # -h, and hidden deprecated aliases
        opt = "/".join(a.option_strings) or a.dest
        if not (a.help or "").strip():
            out.append(f"{name} {opt}: no help text")
            continue
        text = _option_help(parser, a)
        if "(default: None)" in text or "default: None" in text:
            out.append(f"{name} {opt}: shows (default: None)")
        if len(re.findall(r"\(default", text)) > 1:
            out.append(f"{name} {opt}: two defaults: {text!r}")
        if a.required and "(default:" in text:
            out.append(f"{name} {opt}: required but shows a default: {text!r}")
    return out


def test_every_command_uses_the_defaults_formatter():
    for name, p in _subparsers().items():
        assert issubclass(p.formatter_class, DefaultsFormatter), name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_and_a_true_default(name):
    p = _subparsers()[name]
    assert problems(name, p) == []


@pytest.mark.parametrize("name", COMMANDS)
def test_help_renders(name):
    text = _subparsers()[name].format_help()
    assert "(default: None)" not in text and "(default: False)" not in text and "%%" not in text


def test_the_formatter_rules():
    p = argparse.ArgumentParser(formatter_class=DefaultsFormatter)
    p.add_argument("--a", type=int, default=128, help="batch size")
    p.add_argument("--b", help="no default")
    p.add_argument("--c", action="store_true", help="a flag")
    p.add_argument("--d", required=True, default="x", help="required")
    p.add_argument("--e", default=3, help="computed (default: the profile's)")
    p.add_argument("pos", default="y", help="a positional")
    got = {a.dest: _option_help(p, a) for a in p._actions if a.dest != "help"}
    assert got == {"a": "batch size (default: 128)", "b": "no default", "c": "a flag", "d": "required",
                   "e": "computed (default: the profile's)", "pos": "a positional"}
    assert [shown_default(a) for a in p._actions if a.dest != "help"] == [True, False, False, False, False, False]


def test_the_checker_catches_what_it_should():
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--x", help="size (default 5)", default=None)
    p.add_argument("--y", type=int, default=2, help="y (default 2)")
    p.add_argument("--z", type=int)
    p.add_argument("--w", required=True, default="v", help="w")
    found = problems("t", p)
    assert any("--x: shows (default: None)" in f for f in found)
    assert any("--y: two defaults" in f for f in found)
    assert any("--z: no help text" in f for f in found)
    assert any("--w: required but shows a default" in f for f in found)


def test_help_of_a_subcommand_through_the_cli():
    r = subprocess.run([sys.executable, "-m", "edgebranchy", "train", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "(default: None)" not in text
    assert "--depth" in text and "110" in text
    assert "--samples" in text and "--limit" not in text  # the deprecated alias is hidden


def test_samples_is_the_flag_and_limit_a_hidden_alias(capsys):
    p = build_parser()
    assert p.parse_args(["train", "--samples", "5"]).samples == 5
    assert capsys.readouterr().err == ""
    assert p.parse_args(["train", "--limit", "7"]).samples == 7
    assert capsys.readouterr().err == "edgebranchy train: note: --limit is deprecated; use --samples\n"
    for cmd in ("train", "predict", "bench", "quickstart"):
        assert "--samples" in _subparsers()[cmd]._option_string_actions, cmd
    a = p.parse_args(["calibrate", "m.pt", "--in-place"])
    assert a.cost == "macs" and a.in_place and a.out is None


HELP_PROBE = """
import contextlib, io, json, sys
from edgebranchy.cli import build_parser, main
import argparse
sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
loaded = {}
for argv in [["--help"]] + [[name, "--help"] for name in sorted(sub.choices)]:
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 0, (argv, code)
    loaded[" ".join(argv)] = sorted(m for m in sys.modules if m in HEAVY or m.split(".")[0] in HEAVY)
print(json.dumps(loaded))
"""
# what --help must never load: numpy and the libraries behind it, and any backend module (which imports them)
HEAVY = ["numpy", "torch", "onnx", "onnxruntime", "tensorrt", "pycuda", "matplotlib", "psutil",
         "edgebranchy.runtime.backends.base", "edgebranchy.runtime.backends.onnxruntime",
         "edgebranchy.runtime.backends.torch", "edgebranchy.runtime.backends.tensorrt"]


def test_help_of_every_command_loads_neither_numpy_nor_a_backend():
    """`edgebranchy --help` and every subcommand's --help, in one fresh interpreter, checked in sys.modules after each
    (so the command that first loads one is named)."""
    import json

    code = f"HEAVY = set({HEAVY!r})\n" + HELP_PROBE
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(loaded) == len(COMMANDS) + 1
    assert {cmd: mods for cmd, mods in loaded.items() if mods} == {}
