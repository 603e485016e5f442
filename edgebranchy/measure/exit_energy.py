"""Energy per exit: joules per sample by the exit it took, and the saving measured against the MAC estimate.

A sample that leaves at exit k ran segments 0..k, so its energy is the sum of
those segments' energy per call divided by the batch size. Segment energy
comes either from per-segment energy windows (segment k alone, repeated for a
window, `segment_joules`), or from the segment's measured latency times the
average power of the branchy trial windows (stated as such). The expected
per-sample energy weights these by the exit fractions; the saving is set
against the baseline's measured energy per inference, next to the saving the
MAC counts predict (1 - expected MACs per sample / baseline MACs).
"""
from __future__ import annotations

from typing import Sequence

from edgebranchy.errors import EdgeBranchyError


def energy_per_exit(exit_counts: Sequence[int], *, batch_size: int, segment_macs: Sequence[float],
                    baseline_macs: float, baseline_mj: float | None, branchy_mj: float | None,
                    segment_latency_ms: Sequence[float] | None = None, branchy_watts: float | None = None,
                    idle_watts: float | None = None, segment_joules: Sequence[float] | None = None,
                    kind: str = "measured", source: str = "") -> dict:
    """The energy-per-exit record of a bench run (see the module docstring); mJ per sample."""
    k = len(exit_counts)
    n = sum(int(c) for c in exit_counts)
    if n <= 0:
        raise EdgeBranchyError("energy per exit needs at least one sample's exit")
    if len(segment_macs) != k:
        raise EdgeBranchyError(f"{k} exits but {len(segment_macs)} segment MAC counts")
    if batch_size < 1:
        raise EdgeBranchyError("batch size must be >= 1")
    fractions = [int(c) / n for c in exit_counts]
    dynamic = None
    if segment_joules is not None:
        if len(segment_joules) != k:
            raise EdgeBranchyError(f"{k} exits but {len(segment_joules)} segment energies")
        seg_mj = [float(j) * 1e3 / batch_size for j in segment_joules]
        method = "per-segment energy windows (each segment repeated alone)"
    else:
        if segment_latency_ms is None or branchy_watts is None:
            raise EdgeBranchyError("energy per exit needs per-segment energies or latencies and the branchy power")
        if len(segment_latency_ms) != k:
            raise EdgeBranchyError(f"{k} exits but {len(segment_latency_ms)} segment latencies")
        # W x ms = mJ per call
        seg_mj = [branchy_watts * float(t) / batch_size for t in segment_latency_ms]
        if idle_watts is not None:
            dynamic = [max(0.0, branchy_watts - idle_watts) * float(t) / batch_size for t in segment_latency_ms]
        method = (f"segment latency x average power of the branchy windows ({branchy_watts:.3g} W), "
                  f"batch {batch_size}")
    per_exit = [sum(seg_mj[: j + 1]) for j in range(k)]
    expected = sum(f * e for f, e in zip(fractions, per_exit))
    reach_macs = [sum(float(m) for m in segment_macs[: j + 1]) for j in range(k)]
    macs_per_sample = sum(f * m for f, m in zip(fractions, reach_macs))
    rec = {
        "method": method, "kind": kind, "source": source, "exit_fractions": fractions, "n": n,
        "segment_mj": seg_mj, "per_exit_mj": per_exit,
        "dynamic_per_exit_mj": None if dynamic is None else [sum(dynamic[: j + 1]) for j in range(k)],
        "expected_per_sample_mj": expected,
        "branchy_measured_per_sample_mj": branchy_mj, "baseline_measured_per_sample_mj": baseline_mj,
        "macs_per_exit": reach_macs, "macs_per_sample": macs_per_sample, "baseline_macs": float(baseline_macs),
        "saving_from_macs": 1.0 - macs_per_sample / float(baseline_macs) if baseline_macs else None,
        "saving_from_segments": (1.0 - expected / baseline_mj) if baseline_mj else None,
        "saving_measured": (1.0 - branchy_mj / baseline_mj) if (baseline_mj and branchy_mj is not None) else None,
    }
    return rec


def summary_line(rec: dict, names: list | None = None) -> str:
    """One line: mJ per sample by exit (`names`: each exit's name, default `exit j`), and the measured saving
    against the MAC estimate."""
    per = ", ".join(f"{names[j] if names and j < len(names) else f'exit {j}'} {e:.3g} mJ"
                    for j, e in enumerate(rec["per_exit_mj"]))
    parts = [f"energy per exit ({rec['kind']}): {per}"]
    if rec["saving_measured"] is not None:
        parts.append(f"saving vs baseline measured {rec['saving_measured'] * 100:.1f}%")
    if rec["saving_from_segments"] is not None:
        parts.append(f"from segments {rec['saving_from_segments'] * 100:.1f}%")
    if rec["saving_from_macs"] is not None:
        parts.append(f"MAC estimate {rec['saving_from_macs'] * 100:.1f}%")
    return "; ".join(parts)
