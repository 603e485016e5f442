"""Every script under benchmarks/ still loads against the package it measures: a refactor that removes a name a
script imports (as `data.splits.load_test_data` once was) fails here, not when someone re-runs a recorded
command."""
from __future__ import annotations

import subprocess
import sys

import pytest

from eb_testutil import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))


def test_there_are_scripts():
    assert len(SCRIPTS) >= 10 and "plan_gain.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_loads_and_explains_itself(script):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage" in r.stdout.lower(), r.stdout[:500]
