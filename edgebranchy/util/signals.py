"""SIGTERM handled as SIGINT is, and the few steps that must not be cut in half.

`terminate_as_interrupt()` makes SIGTERM raise KeyboardInterrupt in the main thread, so every clean-up
written for Ctrl-C (temporary folders, half-written copies, a bench's trial log) also runs when a job
runner, `timeout` or `kill` stops a command. `uninterrupted()` holds SIGINT and SIGTERM back while an
output is swapped into place (two renames, a results file and its side file): the signal is delivered
once the block is done, so an interruption leaves the old output or the new one, never neither.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt during the block (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then act as they would have (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list = []

    def hold(signum, frame) -> None:
        pending.append((signum, frame))

    olds = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in olds.items():
            signal.signal(s, h)
        if pending:
            signum, frame = pending[0]
            handler = olds[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
