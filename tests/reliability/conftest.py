"""Fixtures for the reliability tests."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def art(tiny_artifact, tmp_path):
    """A private copy of the tiny artifact, for tests that damage or overwrite it."""
    dst = tmp_path / "art"
    shutil.copytree(tiny_artifact, dst)
    return dst
