"""Command-line entry point: `edgebranchy <command> ...`.

Every module in this package that defines `add_parser(subparsers)` and
`run(args) -> int` is a subcommand. Modules import only the standard library at
top level; heavy libraries are imported inside `run`, so `--help` works on a
bare install.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from edgebranchy import __version__
from edgebranchy.cli._args import OneLineParser, use_defaults_formatter
from edgebranchy.cli._flags import with_flags
from edgebranchy.errors import EdgeBranchyError

_EPILOG = """\
The usual flow:
  edgebranchy quickstart --out runs/quick        # everything below, on this CPU
  edgebranchy train --model b-lenet --dataset fashion-mnist --out runs/lenet.pt
  edgebranchy calibrate runs/lenet.pt --in-place --max-accuracy-drop 0.5
  edgebranchy export runs/lenet.pt --out runs/lenet-artifact
  edgebranchy build runs/lenet-artifact --profile auto   # NVIDIA devices: TensorRT engines
  edgebranchy bench runs/lenet-artifact --profile auto --out runs/results.json
  edgebranchy report runs/results.json --out runs/report

Run `edgebranchy <command> --help` for the details of each step.
"""


def _commands() -> list:
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "add_parser") and hasattr(mod, "run"):
            mods.append(mod)
    mods.sort(key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edgebranchy",
        description="BranchyNet early exit for edge devices: train, calibrate, export, run, measure, report.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgebranchy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = mod.add_parser(sub)
        use_defaults_formatter(p)  # every command's help shows real defaults once, never "(default: None)"
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed in one line
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    args._argv = list(sys.argv[1:] if argv is None else argv)  # as given: a command that says how to go on
    # before torch loads: OpenMP threads that wait for work sleep instead of spinning. Measured: one core busy,
    # spinning made a B-LeNet epoch many times slower (benchmarks/results/train_threads.md); the user's own
    # OMP_WAIT_POLICY is kept
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from edgebranchy.util import talk

    from edgebranchy.util.signals import terminate_as_interrupt

    talked = talk.enabled()
    talk.enable(not getattr(args, "quiet", False))  # progress notes on stderr where a person waits
    try:
        with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
            return int(args._run(args) or 0)
    except ModuleNotFoundError as e:  # an optional library this command needs (torch on a board)
        from edgebranchy.cli._extras import missing_extra

        line = missing_extra(args.command, e)
        if line is None:
            raise
        print(f"edgebranchy {args.command}: error: {line}", file=sys.stderr)
        return 2
    except EdgeBranchyError as e:  # the library names its settings (`budget`); the user gave flags (--budget)
        text = with_flags(str(e), _subparser(parser, args.command))
        print(f"edgebranchy {args.command}: error: {_one_line(text)}", file=sys.stderr)
        return 2
    except OSError as e:
        # A read or write the command could not do (read-only or full disk, missing folder): the
        # writers leave nothing half-written, so the cause in one line is all the user needs.
        from edgebranchy.util.outputs import os_error_text

        where = e.filename if e.filename else "a file"
        print(f"edgebranchy {args.command}: error: cannot access {where}: {os_error_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgebranchy {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        talk.enable(talked)  # main() called from Python (tests) leaves library code quiet again


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _one_line(text: str) -> str:
    """Messages from libraries may span lines; the CLI prints one."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
