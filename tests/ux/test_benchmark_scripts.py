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


def test_compare_gate_states_the_window_bench_really_uses_by_default(monkeypatch):
    """compare_gate's report compares its windows with bench's default; when that default became "chosen at run
    time" (None) the report step crashed after a 17-minute run. It now reads the window bench runs when nothing
    lengthens it, a number: the one bench runs with no power source to lengthen it."""
    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.run import trial_window

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import compare_gate

    assert BenchConfig(artifact="", out="").min_window_s is None  # why the old read failed
    w = compare_gate.default_window()
    assert isinstance(w, float) and w > 0
    assert w == trial_window(None, None, lambda s: None)  # no power source to lengthen it
