"""The report's main table: one row per run, branchy against its baseline, and (2+ runs) each run against R1.

Gains and intervals come from `artifact.gains`; a gain below 1.00x is marked as a loss (class "loss",
"(slower)" / "(more)" in the text), so a losing run never reads like a win.
"""
from __future__ import annotations

from edgebranchy.artifact.gains import change, gains_of
from edgebranchy.report.results import Run
from edgebranchy.report.summary import Cell, Column, fmt_sig, latency_per
from edgebranchy.report.verdict import fmt_pct, fmt_points, fmt_x

BASE_COLUMNS = (
    Column("Run", text=True), Column("p50 ms baseline → branchy", text=True), Column("Gain p50 [95% CI]"),
    Column("Gain mean [95% CI]"), Column("p99 change [95% CI]"), Column("Energy gain [95% CI]"),
    Column("Accuracy Δ points [95% CI]"), Column("Exit %", text=True),
)
VS_R1 = Column("Branchy p50 per sample vs R1 [95% CI]")


def main_columns(runs: list[Run]) -> list[Column]:
    """The main table's columns; the difference against R1 only with two runs or more."""
    return list(BASE_COLUMNS) + ([VS_R1] if len(runs) > 1 else [])


def _iv(ci: list[float] | None, fmt) -> tuple[str, str] | None:
    return None if not ci else (fmt(ci[0]), fmt(ci[1]))


def gain_cell(entry: dict | None, worse: str = "slower") -> Cell:
    """A gain (baseline / branchy): 'loss' below 1.00x, 'win' when its whole interval is above 1."""
    if entry is None or entry.get("gain") is None:
        return Cell("n/a")
    g, ci = entry["gain"], entry.get("ci95")
    if g < 1.0:
        return Cell(f"{fmt_x(g)} ({worse})", "loss", _iv(ci, fmt_x))
    return Cell(fmt_x(g), "win" if ci and ci[0] > 1.0 else None, _iv(ci, fmt_x))


def _p99_cell(entry: dict) -> Cell:
    ch, ci = entry.get("change"), entry.get("ci95")
    worse = ch is not None and ch > 0.05 and (not ci or ci[0] > 0)
    return Cell(fmt_pct(ch), "loss" if worse else None, _iv(ci, fmt_pct))


def _energy_cell(entry: dict | None) -> Cell:
    if entry is None:
        return Cell("not recorded")
    c = gain_cell(entry, worse="more energy")
    return Cell(f"{c.value} ({entry.get('kind') or '?'})", c.cls, c.interval)


def _accuracy_cell(a: dict) -> Cell:
    return Cell(fmt_points(a["diff_points"]), None, _iv(a["ci95_points"], fmt_points))


def _vs_r1(first: Run, run: Run) -> Cell:
    if run.index == first.index:
        return Cell("reference")
    c = change(first.data, run.data, "branchy p50 ms")
    if c["change"] is None:
        return Cell("n/a")
    slower = c["change"] > 0 and (not c["ci95"] or c["ci95"][0] > 0)
    return Cell(f"{fmt_pct(c['change'], 1)} ({fmt_sig(c['old'], 3)} → {fmt_sig(c['new'], 3)})",
                "loss" if slower else None, _iv(c["ci95"], lambda v: fmt_pct(v, 1)))


def main_rows(runs: list[Run]) -> list[list[Cell]]:
    """One row per run in the columns of main_columns(runs)."""
    rows = []
    for run in runs:
        g = gains_of(run.data)
        p50 = g["p50"]
        row = [
            Cell(f"R{run.index}: {run.label}"),
            Cell(f"{fmt_sig(p50['baseline'])} → {fmt_sig(p50['branchy'])} per {latency_per(run)}"),
            gain_cell(p50), gain_cell(g["mean"]), _p99_cell(g["p99"]), _energy_cell(g["energy"]),
            _accuracy_cell(g["accuracy"]),
            Cell(" / ".join(f"{100 * f:.1f}" for f in g["exit_fractions"])),
        ]
        if len(runs) > 1:
            row.append(_vs_r1(runs[0], run))
        rows.append(row)
    return rows
