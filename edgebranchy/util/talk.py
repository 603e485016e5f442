"""Progress notes where a person waits ("loading fashion-mnist from DIR ..."), on stderr.

Library code calls `say(text)`; it prints only once the CLI has called `enable()` (library users and
tests see nothing). Every note ends with " ..." so a reader of stderr can tell notes from the one-line
error a failed command prints. Standard library only.
"""
from __future__ import annotations

import sys

_enabled = False


def enable(on: bool = True) -> None:
    """Let `say` print (the CLI does this; `--quiet` commands may turn it off again)."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


def say(text: str) -> None:
    """One progress note on stderr, flushed at once (ends with " ...")."""
    if not _enabled:
        return
    text = text.rstrip()
    if not text.endswith("..."):
        text += " ..."
    print(text, file=sys.stderr, flush=True)


def is_note(line: str) -> bool:
    """Whether a line of stderr is a progress note (not an error or a warning)."""
    return line.rstrip().endswith(" ...")
