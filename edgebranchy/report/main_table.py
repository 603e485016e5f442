"""The report's main table: one row per run, branchy against its baseline, and (2+ runs) each run against R1.

Gains and intervals come from `artifact.gains`; a gain below 1.00x is marked as a loss (class "loss",
"(slower)" / "(more)" in the text), so a losing run never reads like a win.
"""
from __future__ import annotations

from edgebranchy.artifact.gains import change, gains_of
from edgebranchy.report.runs import Run
from edgebranchy.report.details_table import Cell, Column, fmt_sig, latency_per
from edgebranchy.report.verdict import with_interval

BASE_COLUMNS = (
    Column("Run", text=True), Column("p50 ms baseline → branchy", text=True), Column("Gain p50 [95% CI]"),
    Column("Gain mean [95% CI]"), Column("p99 change [95% CI]"), Column("Energy gain [95% CI]"),
    Column("Accuracy Δ points [95% CI]"), Column("Exit %", text=True),
)
VS_R1 = Column("Branchy p50 per sample vs R1 [95% CI]")


def main_columns(runs: list[Run]) -> list[Column]:
    """The main table's columns; the difference against R1 only with two runs or more."""
    return list(BASE_COLUMNS) + ([VS_R1] if len(runs) > 1 else [])


def _parts(value: float | None, ci: list[float] | None, kind: str, start: int | None = None) \
        -> tuple[str, tuple[str, str] | None]:
    """The value and its interval as text, with the decimals that keep them apart."""
    text, iv = with_interval(value, ci, kind, start)
    return text, (tuple(iv[2:-1].split(", ")) if iv else None)


def _trials_note(entry: dict) -> str:
    note = entry.get("note")
    return f" ({note})" if note else ""


def gain_cell(entry: dict | None, worse: str = "slower") -> Cell:
    """A gain (baseline / branchy): 'loss' below 1.00x, 'win' when its whole interval is above 1."""
    if entry is None or entry.get("gain") is None:
        return Cell("n/a")
    g, ci = entry["gain"], entry.get("ci95")
    text, iv = _parts(g, ci, "x")
    if g < 1.0:
        return Cell(f"{text} ({worse}){_trials_note(entry)}", "loss", iv)
    return Cell(text + _trials_note(entry), "win" if ci and ci[0] > 1.0 else None, iv)


def _p99_cell(entry: dict) -> Cell:
    ch, ci = entry.get("change"), entry.get("ci95")
    worse = ch is not None and ch > 0.05 and (not ci or ci[0] > 0)
    text, iv = _parts(ch, ci, "pct")
    return Cell(text + _trials_note(entry), "loss" if worse else None, iv)


def _energy_cell(entry: dict | None) -> Cell:
    if entry is None:
        return Cell("not recorded")
    c = gain_cell(entry, worse="more energy")
    return Cell(f"{c.value} ({entry.get('kind') or '?'})", c.cls, c.interval)


def _accuracy_cell(a: dict) -> Cell:
    text, iv = _parts(a["diff_points"], a["ci95_points"], "points")
    return Cell(text, None, iv)


def _vs_r1(first: Run, run: Run) -> Cell:
    if run.index == first.index:
        return Cell("reference")
    c = change(first.data, run.data, "branchy p50 ms")
    if c["change"] is None:
        return Cell("n/a")
    slower = c["change"] > 0 and (not c["ci95"] or c["ci95"][0] > 0)
    text, iv = _parts(c["change"], c["ci95"], "pct", start=1)
    return Cell(f"{text} ({fmt_sig(c['old'], 3)} → {fmt_sig(c['new'], 3)})", "loss" if slower else None, iv)


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
