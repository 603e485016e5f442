"""`--lock-clocks`: `jetson_clocks` for the run, the previous state restored afterwards.

Only when the user asks for it. On entry `jetson_clocks --store FILE` saves the
current settings and `jetson_clocks` pins CPU, GPU and EMC at their maximum
(the L4T tool's documented use); on exit, also after an error, Ctrl-C or
SIGTERM, `jetson_clocks --restore FILE` puts them back. It needs root, as the
tool does.
"""
from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

from edgebranchy.errors import EdgeBranchyError

#: where the notes go when no `log` is given (INFO: silent unless logging is configured)
LOGGER = logging.getLogger(__name__)


class LockedClocks:
    """Context manager: clocks locked inside, restored on the way out."""

    def __init__(self, which: Callable[[str], str | None] = shutil.which, store_file: str | Path | None = None,
                 log: Callable[[str], None] | None = None, timeout_s: float = 60.0) -> None:
        self.which = which
        self.store_file = Path(store_file) if store_file else None
        self.log = log if log is not None else LOGGER.info
        self.timeout_s = timeout_s
        self._exe: str | None = None
        self._stored = False
        self._tmpdir: str | None = None
        self._old_term = None

    def _run(self, *args: str) -> None:
        try:
            r = subprocess.run([self._exe, *args], capture_output=True, text=True, timeout=self.timeout_s)
        except (OSError, subprocess.SubprocessError) as e:
            raise EdgeBranchyError(f"jetson_clocks {' '.join(args)} failed: {e}") from None
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise EdgeBranchyError(f"jetson_clocks {' '.join(args)} exited {r.returncode}"
                                   f"{': ' + msg[-1] if msg else ''} (it needs root)")

    def __enter__(self) -> "LockedClocks":
        self._exe = self.which("jetson_clocks")
        if self._exe is None:
            raise EdgeBranchyError("`lock_clocks` needs the L4T jetson_clocks tool on PATH (a Jetson with JetPack); "
                                   "run without `lock_clocks` elsewhere")
        if self.store_file is None:
            self._tmpdir = tempfile.mkdtemp(prefix="edgebranchy-clocks-")
            self.store_file = Path(self._tmpdir) / "l4t_dfs.conf"
        self._run("--store", str(self.store_file))
        self._stored = True
        if threading.current_thread() is threading.main_thread():
            # SIGTERM would skip the restore; turn it into an exception that unwinds through __exit__
            self._old_term = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            self._run()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.log(f"clocks locked with jetson_clocks; previous settings stored in {self.store_file}")
        return self

    def __exit__(self, *exc) -> None:
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None
        if not self._stored:
            return
        self._stored = False
        try:
            self._run("--restore", str(self.store_file))
            self.log("clocks restored (jetson_clocks --restore)")
        except EdgeBranchyError as e:
            self.log(f"warning: could not restore the clocks: {e}; run `sudo jetson_clocks --restore "
                     f"{self.store_file}` by hand")
            return  # keep the stored file for the manual restore
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


class Terminated(SystemExit):
    """SIGTERM while clocks were locked (exit status 143 after the restore)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated(128 + signum)


def maybe_locked(enabled: bool, **kw):
    """LockedClocks(**kw) when `enabled`, else a context that does nothing."""
    import contextlib

    return LockedClocks(**kw) if enabled else contextlib.nullcontext()

