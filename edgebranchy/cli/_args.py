"""Argument types shared by the subcommands (standard library only)."""
from __future__ import annotations

import argparse


def floats(text: str) -> list[float]:
    """'0.1,0.2' -> [0.1, 0.2]; argparse reports anything else as a usage error."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _declared() -> list[tuple[str, tuple]]:
    # imported when the parser is built: the backend modules load numpy, never their own libraries
    from edgebranchy.runtime.backends.base import backend_names, backend_options

    return [(name, backend_options(name)) for name in backend_names()]


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """The CLI flags every backend declares in its OPTIONS (runtime/backends/options.py)."""
    from edgebranchy.runtime.backends.options import add_cli_flags

    add_cli_flags(parser, _declared())


def backend_flag_options(args: argparse.Namespace, backend: str) -> dict:
    """The backend options given as flags, checked against `backend`'s declarations."""
    from edgebranchy.runtime.backends.options import cli_options

    return cli_options(args, backend, _declared())
