"""Helpers shared by test modules (a unique module name: tests/ has several conftest.py files)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `python -m edgebranchy ARGS` in the repository root and capture its output."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgebranchy", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)
