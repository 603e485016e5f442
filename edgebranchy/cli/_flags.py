"""The CLI flag of each library setting (standard library only).

Library errors name a setting as the Python API spells it, in backquotes (`batch_size`, `force`); the CLI
shows the flag a user types instead (--batch-size, --force), where the command has that flag.
"""
from __future__ import annotations

import argparse
import re

#: library setting -> the flag that sets it
FLAGS = {
    "backend": "--backend", "batch_size": "--batch-size", "form": "--form", "samples": "--samples",
    "trials": "--trials", "warmup": "--warmup", "min_window_s": "--min-window", "idle_s": "--idle",
    "out": "--out", "force": "--force", "resume": "--resume", "profile": "--profile", "power": "--power",
    "lock_clocks": "--lock-clocks", "rtol": "--rtol", "repeats": "--repeats",
}
_NAMED = re.compile(r"`([a-z][a-z0-9_]*)`")


def with_flags(message: str, args: argparse.Namespace) -> str:
    """`message` with each setting in backquotes replaced by its flag, where the parsed command has it."""
    def flag(m: re.Match) -> str:
        f = FLAGS.get(m.group(1))
        return f if f is not None and hasattr(args, f[2:].replace("-", "_")) else m.group(0)

    return _NAMED.sub(flag, message)
