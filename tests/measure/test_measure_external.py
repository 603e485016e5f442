"""External meter CSVs: header variants, units, clock offset from the idle/active edges, energy per trial."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.external import align, parse_meter_csv, window_readings

HOST0 = 1_764_612_000.0  # a Unix time on the host clock (Dec 2025)
POWER = {"idle": 3.0, "baseline": 5.2, "branchy": 4.1}


def schedule(trials: int = 4, on: float = 1.0, gap: float = 0.4, idle: float = 2.0):
    """The bench's order: idle, then baseline/branchy windows with gaps; (name, t0, t1) on the host clock."""
    out, t = [], HOST0 + idle
    for _ in range(trials):
        for name in ("baseline", "branchy"):
            out.append((name, t, t + on))
            t += on + gap
    return out, t + idle


def board_power(t_host: np.ndarray, sched) -> np.ndarray:
    p = np.full(t_host.shape, POWER["idle"])
    for name, t0, t1 in sched:
        p[(t_host >= t0) & (t_host < t1)] = POWER[name]
    return p


def meter_samples(sched, end, rate_hz=50.0, clock_offset=-12.345, start_at=HOST0 - 1.0, seed=0):
    """What a meter logs: its clock = host clock + clock_offset; small noise."""
    rng = np.random.default_rng(seed)
    t_host = np.arange(start_at, end + 1.0, 1.0 / rate_hz)
    w = board_power(t_host, sched) + rng.normal(0, 0.03, t_host.shape)
    return t_host + clock_offset, w


def test_offset_from_edges_and_energy_lands_on_the_right_trials(tmp_path):
    sched, end = schedule()
    t_meter, w = meter_samples(sched, end)
    rel = t_meter - t_meter[0]          # the logger starts its clock at 0
    f = tmp_path / "usb.csv"
    f.write_text("Time [s],Power [mW]\n" + "".join(f"{a:.4f},{b * 1000:.1f}\n" for a, b in zip(rel, w)))
    trace = parse_meter_csv(f)
    assert not trace.epoch and trace.interval_s == pytest.approx(0.02, rel=1e-3)
    windows = [(a, b) for _, a, b in sched]
    al = align(trace, windows)
    true_offset = (HOST0 - 1.0) - 0.0   # host time of meter t = 0
    assert al.offset_s == pytest.approx(true_offset, abs=0.02)
    assert al.residual_s is not None and al.residual_s < 0.03 and al.edges_matched == 2 * len(windows)
    assert al.correlation > 0.9 and "offset" in al.line()
    readings = window_readings(trace, al, windows)
    for (name, a, b), r in zip(sched, readings):
        assert r.watts == pytest.approx(POWER[name], rel=0.03), name
        assert r.source == "external" and r.kind == "measured" and r.usable
        assert r.provenance["covers"] == "board-external" and r.samples >= 45


def test_epoch_voltage_current_and_joulescope_style_headers(tmp_path):
    sched, end = schedule(trials=2)
    t_meter, w = meter_samples(sched, end, rate_hz=100.0, clock_offset=0.75)
    volts = np.full_like(w, 5.1)
    f = tmp_path / "joulescope.csv"
    f.write_text("# Joulescope export\n#time,current,voltage,power\n"
                 + "".join(f"{t:.5f},{p / v:.6f},{v:.3f},{p:.5f}\n" for t, p, v in zip(t_meter, w, volts)))
    trace = parse_meter_csv(f)
    assert trace.epoch and "power: power" in trace.source
    al = align(trace, [(a, b) for _, a, b in sched])
    assert al.offset_s == pytest.approx(-0.75, abs=0.01)
    g = tmp_path / "vi.csv"
    g.write_text("timestamp;voltage_mV;current_mA\n"
                 + "".join(f"{t:.4f};{v * 1000:.1f};{p / v * 1000:.3f}\n" for t, p, v in zip(t_meter, w, volts)))
    tr2 = parse_meter_csv(g)
    assert tr2.watts == pytest.approx(trace.watts, rel=1e-3) and "voltage x current" in tr2.source


def test_iso_timestamps_and_watts_column(tmp_path):
    sched, end = schedule(trials=1)
    t_meter, w = meter_samples(sched, end, rate_hz=20.0, clock_offset=0.0)
    iso = [datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds") for t in t_meter]
    f = tmp_path / "iso.csv"
    f.write_text("Date,Watts\n" + "".join(f"{a},{b:.3f}\n" for a, b in zip(iso, w)))
    trace = parse_meter_csv(f)
    assert trace.epoch and trace.t[0] == pytest.approx(t_meter[0], abs=1e-3)
    assert abs(align(trace, [(a, b) for _, a, b in sched]).offset_s) < 0.06


def test_windows_outside_the_trace_are_flagged(tmp_path):
    sched, end = schedule(trials=2)
    t_meter, w = meter_samples(sched, end, clock_offset=0.0)
    keep = t_meter < sched[2][1]       # the logger stopped during the third window
    f = tmp_path / "short.csv"
    f.write_text("time_s,power_w\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(t_meter[keep], w[keep])))
    trace = parse_meter_csv(f)
    windows = [(a, b) for _, a, b in sched]
    rs = window_readings(trace, align(trace, windows), windows)
    assert [r.usable for r in rs] == [True, True, False, False]
    assert "not covered by the meter trace" in rs[3].flag


@pytest.mark.parametrize("content,phrase", [
    ("1.0,2.0\n2.0,3.0\n", "no header"),
    ("time,temperature\n1,2\n2,3\n", "need a time column and a power column"),
    ("time,power\n1,2\n", "fewer than 2 samples"),
    ("time,power\n1,abc\n2,3\n", "line 2"),
    ("time [h],power\n1,2\n2,3\n", "unknown unit"),
])
def test_bad_files(tmp_path, content, phrase):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(EdgeBranchyError, match=phrase):
        parse_meter_csv(f)


def test_flat_trace_cannot_be_aligned(tmp_path):
    f = tmp_path / "flat.csv"
    f.write_text("time,power\n" + "".join(f"{i * 0.1:.1f},3.0\n" for i in range(200)))
    with pytest.raises(EdgeBranchyError, match="no idle/active edges"):
        align(parse_meter_csv(f), [(HOST0 + 1, HOST0 + 2)])
