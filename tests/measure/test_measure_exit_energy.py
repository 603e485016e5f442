"""Energy per exit: per-sample energy by exit, savings measured vs MAC estimate, and its plot."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.exit_energy import energy_per_exit, summary_line


def _rec(**kw):
    base = dict(batch_size=1, segment_macs=[1e6, 3e6], baseline_macs=3.5e6, baseline_mj=16.0, branchy_mj=9.5,
                segment_latency_ms=[1.0, 2.0], branchy_watts=5.0, idle_watts=2.0)
    base.update(kw)
    return energy_per_exit([60, 40], **base)


def test_energy_per_exit_from_latency_and_power():
    r = _rec()
    assert r["segment_mj"] == pytest.approx([5.0, 10.0])          # W x ms = mJ
    assert r["per_exit_mj"] == pytest.approx([5.0, 15.0])          # exit 1 ran both segments
    assert r["dynamic_per_exit_mj"] == pytest.approx([3.0, 9.0])
    assert r["expected_per_sample_mj"] == pytest.approx(0.6 * 5 + 0.4 * 15)
    assert r["saving_from_segments"] == pytest.approx(1 - 9.0 / 16.0)
    assert r["saving_measured"] == pytest.approx(1 - 9.5 / 16.0)
    assert r["saving_from_macs"] == pytest.approx(1 - (0.6 * 1e6 + 0.4 * 4e6) / 3.5e6)
    assert "segment latency x average power" in r["method"]
    line = summary_line(r)
    assert "exit 0 5 mJ, exit 1 15 mJ" in line and "measured 40.6%" in line and "MAC estimate 37.1%" in line


def test_energy_per_exit_from_segment_windows_and_batches():
    r = _rec(batch_size=4, segment_joules=[0.02, 0.04], segment_latency_ms=None, branchy_watts=None)
    assert r["per_exit_mj"] == pytest.approx([5.0, 15.0]) and r["dynamic_per_exit_mj"] is None
    assert r["method"].startswith("per-segment energy windows")
    with pytest.raises(EdgeBranchyError, match="segment MAC"):
        _rec(segment_macs=[1.0])
    with pytest.raises(EdgeBranchyError, match="needs per-segment"):
        _rec(branchy_watts=None)
    with pytest.raises(EdgeBranchyError, match="at least one"):
        energy_per_exit([0, 0], batch_size=1, segment_macs=[1, 1], baseline_macs=1, baseline_mj=1, branchy_mj=1,
                        segment_latency_ms=[1, 1], branchy_watts=1)


def test_energy_per_exit_plot():
    pytest.importorskip("matplotlib")
    from edgebranchy.report.energy_plots import energy_per_exit as plot
    from edgebranchy.report.figures import Skipped
    from edgebranchy.report.runs import Run

    def run(rec):
        data = {"variants": {"branchy": {"energy_per_exit": rec}, "baseline": {}}}
        return Run(1, Path("r.json"), data, "m · d", "R1: m")

    p = plot([run(_rec())])
    assert p.filename == "energy_per_exit.png" and p.png.startswith(b"\x89PNG")
    assert "exit 0 5 mJ" in p.alt and "measured 40.6%" in p.alt and "MAC estimate 37.1%" in p.alt
    assert isinstance(plot([run(None)]), Skipped)
