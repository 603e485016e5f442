"""The CLI flag of each library setting (standard library only).

Library errors name a setting as the Python API spells it, in backquotes (`batch_size`, `force`); the CLI
shows the flag a user types instead (--batch-size, --force), where the command has that flag. A setting
whose name is the flag's destination (`max_accuracy_drop` -> --max-accuracy-drop) needs no entry here;
`FLAGS` lists the ones that differ or that a command may spell otherwise.
"""
from __future__ import annotations

import argparse
import re

#: library setting -> the flag that sets it, where the parser's destination does not say it
FLAGS = {
    "backend": "--backend", "batch_size": "--batch-size", "form": "--form", "samples": "--samples",
    "trials": "--trials", "warmup": "--warmup", "min_window_s": "--min-window", "idle_s": "--idle",
    "out": "--out", "force": "--force", "resume": "--resume", "profile": "--profile", "power": "--power",
    "lock_clocks": "--lock-clocks", "rtol": "--rtol", "repeats": "--repeats",
}
_NAMED = re.compile(r"`([a-z][a-z0-9_]*)`")


def command_flags(parser: argparse.ArgumentParser) -> dict:
    """{setting: flag} for one command's parser: each option's destination, then the `FLAGS` it has."""
    flags: dict = {}
    options = set()
    for a in parser._actions:
        longs = [o for o in a.option_strings if o.startswith("--")]
        options.update(longs)
        if longs and (a.dest not in flags or a.help is not argparse.SUPPRESS):
            flags[a.dest] = longs[0]
    for setting, flag in FLAGS.items():
        if flag in options:
            flags.setdefault(setting, flag)
    return flags


def with_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """`message` with each setting in backquotes replaced by its flag, where the command has that flag."""
    flags = command_flags(parser)
    return _NAMED.sub(lambda m: flags.get(m.group(1), m.group(0)), message)
