"""Argument types shared by the subcommands (standard library only)."""
from __future__ import annotations

import argparse


def floats(text: str) -> list[float]:
    """'0.1,0.2' -> [0.1, 0.2]; argparse reports anything else as a usage error."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
