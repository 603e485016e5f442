"""Shared helpers for the measure tests: fixture paths and a fake tegrastats executable."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"

_FAKE_TEGRASTATS = '''#!{python}
"""A stand-in for tegrastats: prints the lines of a log file, cycling, at --interval ms."""
import sys, time
args = sys.argv[1:]
interval = int(args[args.index("--interval") + 1]) / 1000.0
lines = open({log!r}).read().splitlines()
exit_after = {exit_after!r}
i = 0
while True:
    if exit_after is not None and i >= exit_after:
        sys.exit(3)
    sys.stdout.write(lines[i % len(lines)] + "\\n")
    sys.stdout.flush()
    i += 1
    time.sleep(interval)
'''


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def tegrastats_cases() -> dict:
    return json.loads((FIXTURES / "tegrastats_lines.json").read_text())


@pytest.fixture
def fake_tegrastats(tmp_path):
    """Factory: fake_tegrastats(log_path, exit_after=None) -> path of an executable."""
    made = []

    def make(log: Path, exit_after: int | None = None, name: str = "tegrastats") -> str:
        d = tmp_path / f"bin{len(made)}"
        d.mkdir()
        exe = d / name
        exe.write_text(_FAKE_TEGRASTATS.format(python=sys.executable, log=str(log), exit_after=exit_after))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        made.append(exe)
        return str(exe)

    return make


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Create text files under `root` from {relative path: content}."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


def make_executable(path: Path, body: str) -> str:
    """Write a Python script with a shebang to `path` and make it executable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return os.fspath(path)


@pytest.fixture
def tree():
    """write_tree(root, {relative path: content}) -> root."""
    return write_tree


@pytest.fixture
def script():
    """make_executable(path, python_body) -> path string."""
    return make_executable
