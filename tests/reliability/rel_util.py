"""Helpers for the reliability tests: in-process CLI calls and tree fingerprints."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path


def cli(*argv) -> tuple[int, str, str]:
    """Run `edgebranchy ARGV` in this process: (exit status, stdout, stderr)."""
    from edgebranchy.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return rc, out.getvalue(), err.getvalue()


def tree(root: str | os.PathLike) -> dict[str, str]:
    """relative path -> sha256 (or 'dir') of everything under `root` (symlinks by target text)."""
    root = Path(root)
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            found[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def one_error_line(err: str, command: str | None = None) -> str:
    """Assert `err` is exactly one line and no traceback; return it."""
    lines = [ln for ln in err.strip("\n").splitlines() if not ln.rstrip().endswith(" ...")]  # progress notes
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err
    if command:
        assert lines[0].startswith(f"edgebranchy {command}"), lines[0]
    return lines[0]
