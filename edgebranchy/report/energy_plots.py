"""The energy-per-exit plot: mJ per sample by the exit it took, and the saving measured vs the MAC estimate."""
from __future__ import annotations

from edgebranchy.report.figures import BASELINE_COLOR, BRANCHY_COLOR, MIN_FONT, RUN_COLORS, Plot, Skipped, \
    legend_below, page_width, png, pyplot, wrap
from edgebranchy.report.runs import Run

FILENAME = "energy_per_exit.png"


def energy_per_exit(runs: list[Run]) -> Plot | Skipped:
    """Per run: bars of energy per sample at each exit with the baseline as a line; savings side by side."""
    title = "Energy per exit"
    recs = [(r, r.branchy.get("energy_per_exit")) for r in runs]
    recs = [(r, e) for r, e in recs if e]
    if not recs:
        return Skipped(FILENAME, title, "no results file holds per-exit energy (bench with a power reading)")
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(page_width(max(8.0, 2.2 * len(recs) + 5.0)),
                                                4.4 + 0.22 * (len(recs) + 1) // (1 if len(recs) <= 3 else 2)))
    width = 0.8 / len(recs)
    alts = []
    for i, (run, e) in enumerate(recs):
        xs = [k + (i - (len(recs) - 1) / 2) * width for k in range(len(e["per_exit_mj"]))]
        color = RUN_COLORS[i % len(RUN_COLORS)] if len(recs) > 1 else BRANCHY_COLOR
        hatch = "//" if e["kind"] == "estimated" else None
        ax.bar(xs, e["per_exit_mj"], width * 0.9, color=color, hatch=hatch, label=wrap(run.short_label, 30))
        if e.get("baseline_measured_per_sample_mj"):
            ax.axhline(e["baseline_measured_per_sample_mj"], color=BASELINE_COLOR if len(recs) == 1 else color,
                       linestyle="--", linewidth=1)
        savings = [("measured", e.get("saving_measured")), ("from segments", e.get("saving_from_segments")),
                   ("MAC estimate", e.get("saving_from_macs"))]
        bx.bar([j + (i - (len(recs) - 1) / 2) * width for j in range(3)],
               [100 * (v or 0.0) for _, v in savings], width * 0.9, color=color, hatch=hatch)
        alts.append(f"{run.short_label}: " + ", ".join(f"{run.exit_label(k)} {v:.3g} mJ" for k, v in enumerate(e["per_exit_mj"]))
                    + "; savings " + ", ".join(f"{n} {v * 100:.1f}%" for n, v in savings if v is not None))
    ax.set_xticks(range(max(len(e["per_exit_mj"]) for _, e in recs)))
    ax.set_xlabel("exit taken")
    ax.set_ylabel("mJ per sample")
    ax.set_title("Energy per sample by exit (dashed: baseline)", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    legend_below(ax, len(recs))
    bx.set_xticks(range(3), ["measured", "from segments", "MAC estimate"], fontsize=max(MIN_FONT, 9))
    bx.set_ylabel("saving vs baseline (%)")
    bx.set_title("Energy saving of early exit", fontsize=11)
    bx.axhline(0, color="black", linewidth=0.8)
    bx.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    methods = sorted({e["method"] for _, e in recs})
    return Plot(filename=FILENAME, title=title,
                caption=("Energy per sample for the samples that left at each exit (segments 0..k), the "
                         "baseline's measured energy per inference dashed; right: the saving of the branchy "
                         "network measured over whole windows, predicted from the per-exit energies and the "
                         "exit fractions, and estimated from MAC counts. Hatched: estimated power. Method: "
                         + "; ".join(methods) + "."),
                alt="Energy per exit: " + "; ".join(alts), png=png(fig))
