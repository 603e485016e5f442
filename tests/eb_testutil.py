"""Helpers shared by test modules (a unique module name: tests/ has several conftest.py files)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: a prelude for `python -c`: any import of torch fails, as on a device without it
NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):  # as an install without torch says it
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def run_cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `python -m edgebranchy ARGS` in the repository root and capture its output."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgebranchy", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)


def run_cli_with(prelude: str, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Like run_cli, but runs the Python code `prelude` in the same process first (e.g. to pass a callback in)."""
    e = dict(os.environ)
    e.update(env or {})
    code = prelude + "\nfrom edgebranchy.cli import main\nraise SystemExit(main())\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)


def sigkill_after_trial(trial: int, variant: str, run: str | None = None) -> str:
    """A prelude for run_cli_with: every bench session gets an on_trial hook that SIGKILLs the process once that
    trial (of run `run`, or of any run) is in the trial log."""
    return f"""
import os, signal
from edgebranchy.bench.session import BenchSession
_init = BenchSession.__init__
def _kill_on(rec):
    if (rec["trial"], rec["variant"]) == ({trial!r}, {variant!r}) and {run!r} in (None, rec["run"]):
        os.kill(os.getpid(), signal.SIGKILL)
def _patched(self, *a, **kw):
    _init(self, *a, **kw)
    self.on_trial = _kill_on
BenchSession.__init__ = _patched
"""


def sigkill_after_epoch(phase: str, epoch: int) -> str:
    """A prelude for run_cli_with: the trainer gets an on_epoch callback that SIGKILLs the process once the
    state after `phase` epoch `epoch` is on disk."""
    return f"""
import os, signal
from edgebranchy.train import trainer as _trainer
_init = _trainer.Trainer.__init__
def _kill_on(stats):
    if (stats["phase"], stats["epoch"]) == ({phase!r}, {epoch!r}):
        os.kill(os.getpid(), signal.SIGKILL)
def _patched(self, *a, **kw):
    _init(self, *a, on_epoch=_kill_on, **kw)
_trainer.Trainer.__init__ = _patched
"""
