"""One writer per output: a lock file beside the output, held while a command writes it.

`output_lock(out)` takes `.NAME.lock` in the output's folder with `fcntl.flock`: the kernel drops the lock
when its process ends, however it ends, so a lock file left by a killed run is stale and is taken over
(its recorded pid is only used to say who holds a live one). A second run that wants the same output
while the first one holds it is refused at once with one line naming the holder's pid. The lock is
re-entrant inside one process (a quickstart's bench inside the quickstart's own lock).
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgebranchy.errors import EdgeBranchyError

_held: dict = {}  # lock path -> [fd, depth]
_guard = threading.Lock()


def lock_path(out: str | os.PathLike) -> Path:
    """Where the lock of the output `out` lives: .NAME.lock beside it."""
    out = Path(os.path.abspath(out))
    return out.with_name(f".{out.name}.lock")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii", errors="replace").strip()[:20]
    except OSError:
        return "another edgebranchy"
    return f"edgebranchy (pid {pid})" if pid.isdigit() else "another edgebranchy"


def _acquire(path: Path, out, option: str) -> int:
    import fcntl

    from edgebranchy.util.outputs import os_error_text

    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                         0o644)
        except OSError as e:
            raise EdgeBranchyError(f"{option} {out}: cannot create the lock file {path}: {os_error_text(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise EdgeBranchyError(f"{option} {out} is being written by {_holder(path)}: wait for it to finish, "
                                   f"or choose another output") from None
        # the holder before us may have removed the file between our open and our flock: then lock anew
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _release(path: Path, fd: int) -> None:
    try:
        os.unlink(path)  # while still locked: a waiting run then finds a new file, not ours
    except OSError:
        pass
    os.close(fd)


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, option: str = "`out`",
                check: Optional[Callable[[], object]] = None) -> Iterator[Path]:
    """Hold the lock of the output `out` for the block; EdgeBranchyError at once if another run holds it.
    `check` (the output check) runs before the lock is taken, since taking it creates the output's folder, and
    again once it is held, when no other run can change what is there."""
    path = lock_path(out)
    if check is not None:
        check()
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
        else:
            _held[path] = [_acquire(path, out, option), 1]
    try:
        if check is not None:
            check()
        yield path
    finally:
        with _guard:
            entry = _held[path]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[path]
                _release(path, entry[0])
