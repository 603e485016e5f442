"""The details table (one row per variant of each run): its columns, its cells (value + interval), the number
formats, and the notes under the summary. The short main table (one row per run) is in `report.main_table`."""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgebranchy.report.runs import Run
from edgebranchy.report.trust_notes import trust_notes


@dataclass(frozen=True)
class Column:
    """A summary-table column: its title, and whether it holds text (left-aligned) rather than a number."""

    title: str
    text: bool = False


#: the details table: one row per variant of each run
COLUMNS = (
    Column("Run", text=True), Column("Variant", text=True), Column("Acc %"), Column("Latency per", text=True),
    Column("p50 ms"), Column("p99 ms"), Column("mean ms"), Column("Entropy T", text=True),
    Column("Energy mJ/inf [95% CI]"), Column("Energy kind (source)", text=True),
    Column("Dynamic mJ/inf [95% CI]"), Column("Dynamic gain"),
)
SUMMARY_COLUMNS = [c.title for c in COLUMNS]


@dataclass(frozen=True)
class Cell:
    """A table cell: its value, an optional CSS class for the HTML page, an optional (low, high) interval."""

    value: str
    cls: str | None = None
    interval: tuple[str, str] | None = None

    @property
    def text(self) -> str:
        """The cell as one line of text: 'value', or 'value [low, high]'."""
        return self.value if self.interval is None else f"{self.value} [{self.interval[0]}, {self.interval[1]}]"


@dataclass(frozen=True)
class SummaryRow:
    """One variant of one run: the cells in the order of COLUMNS."""

    run: int
    variant: str
    cells: list[Cell]


def fmt_sig(x: float, digits: int = 4) -> str:
    """Fixed-point with `digits` significant digits (never an exponent): 0.14 -> '0.1400'."""
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def fmt_gain(num: float, den: float) -> str:
    """A ratio as '2.00x'; 'n/a' when the denominator is zero."""
    return "n/a" if den == 0 else f"{num / den:.2f}x"


def estimate_cell(est: dict | None) -> Cell:
    """An energy estimate: its median, with the 95% interval (in mJ), or 'n/a'."""
    if est is None:
        return Cell("n/a")
    if not est.get("ci95"):   # one trial: no interval
        return Cell(fmt_sig(est["median"]))
    lo, hi = est["ci95"]
    values = (est["median"], lo, hi)
    digits = 4
    while digits < 10 and len({fmt_sig(v, digits) for v in values}) < len(set(values)):
        digits += 1   # an interval never collapses onto its point when the trials differ
    return Cell(fmt_sig(est["median"], digits), interval=(fmt_sig(lo, digits), fmt_sig(hi, digits)))


def fmt_thresholds(values: list) -> str:
    """Entropy thresholds as '0.025, 0.05' (the final exit has none)."""
    return ", ".join(f"{t:.4g}" for t in values if t is not None)


def latency_per(run: Run) -> str:
    if run.baseline["latency_ms"]["per"] == "batch":
        return f"batch of {run.batch_size}"
    return "sample" if run.batch_size == 1 else f"sample (batch {run.batch_size})"


def kind_text(energy: dict) -> str:
    """'estimated (psutil-cpu-model)'; the source alone where it already says the kind."""
    kind, source = energy["kind"], str(energy["source"])
    return kind if source.lower() in ("estimate", "estimated", kind) else f"{kind} ({source})"


def _energy_cells(run: Run, variant: str) -> tuple[Cell, Cell, Cell, Cell]:
    energy = run.data["variants"][variant]["energy"]
    if energy is None:
        na = Cell("n/a")
        return Cell("not recorded"), na, Cell("not recorded"), na
    kind_cell = Cell(kind_text(energy), energy["kind"])
    gain_dyn = Cell("")
    if variant == "branchy":
        base, br = run.baseline["energy"], run.branchy["energy"]
        if base is not None:
            mixed = " (mixed kinds)" if base["kind"] != br["kind"] else ""
            bd, dd = base.get("dynamic_per_inference_mj"), br.get("dynamic_per_inference_mj")
            gain_dyn = Cell(fmt_gain(bd["median"], dd["median"]) + mixed if bd and dd else "n/a")
    return (estimate_cell(energy["per_inference_mj"]), kind_cell,
            estimate_cell(energy.get("dynamic_per_inference_mj")), gain_dyn)


def summary_rows(runs: list[Run]) -> list[SummaryRow]:
    """Two rows per run (baseline, branchy) in the columns of COLUMNS (the details table)."""
    rows = []
    for run in runs:
        for variant in ("baseline", "branchy"):
            v = run.data["variants"][variant]
            lat = v["latency_ms"]
            is_br = variant == "branchy"
            e_mj, e_kind, d_mj, d_gain = _energy_cells(run, variant)
            rows.append(SummaryRow(run.index, variant, [
                Cell(f"R{run.index}: {run.label}"),
                Cell(variant),
                Cell(f"{100 * v['accuracy']:.2f}"),
                Cell(latency_per(run)),
                Cell(fmt_sig(lat["p50"])),
                Cell(fmt_sig(lat["p99"])),
                Cell(fmt_sig(lat["mean"])),
                Cell(fmt_thresholds(run.env["thresholds"]) if is_br else ""),
                e_mj, e_kind, d_mj, d_gain,
            ]))
    return rows


def summary_notes(runs: list[Run]) -> list[str]:
    """Plain-language caveats that belong under the summary table."""
    notes = []
    for run in runs:
        tag = f"R{run.index}"
        if run.baseline["latency_ms"]["per"] != run.branchy["latency_ms"]["per"]:
            notes.append(f"{tag}: baseline and branchy latencies are recorded per different units "
                         f"({run.baseline['latency_ms']['per']} vs {run.branchy['latency_ms']['per']}); "
                         "the gain compares them as recorded.")
        for variant in ("baseline", "branchy"):
            energy = run.data["variants"][variant]["energy"]
            if energy is None:
                notes.append(f"{tag} {variant}: no energy reading in the results file.")
            elif energy["kind"] == "estimated":
                src = "" if kind_text(energy) == "estimated" else f" (source: {energy['source']})"
                notes.append(f"{tag} {variant}: energy is ESTIMATED by a power model{src}, not measured.")
        idle = run.data["idle"]
        energies = [run.data["variants"][v]["energy"] for v in ("baseline", "branchy")]
        if idle is None:
            notes.append(f"{tag}: no idle power in the results file; dynamic energy is as recorded.")
        elif idle["kind"] == "estimated" and any(e and e["kind"] == "measured" for e in energies):
            notes.append(f"{tag}: dynamic energy subtracts an ESTIMATED idle power "
                         f"({idle['watts']:.3g} W, source: {idle['source']}) from a measured total.")
        notes += trust_notes(run)
    return notes
