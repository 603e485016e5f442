"""The report's plots as PNG bytes; every plot takes the list of runs so runs compare side by side."""
from __future__ import annotations

import math
from typing import Any

from edgebranchy.artifact.gains import cost_source_name
from edgebranchy.report.energy_plots import energy_per_exit
from edgebranchy.report.figures import BASELINE_COLOR, BRANCHY_COLOR, MIN_FONT, RUN_COLORS, Plot, Skipped, grid, \
    legend_below, page_width, png, pyplot, wrap
from edgebranchy.report.runs import Run

PLOT_FILES = ("latency_cdf.png", "exit_histogram.png", "pareto.png", "energy.png", "energy_per_exit.png")


def latency_unit(run: Run) -> str:
    """'ms per sample' or 'ms per batch of N', as the run's latency samples are recorded."""
    if run.baseline["latency_ms"]["per"] == "batch":
        return f"ms per batch of {run.batch_size}"
    return "ms per sample"


def latency_cdf(runs: list[Run]) -> Plot:
    """Empirical CDF of baseline and branchy latency, one panel per run."""
    import numpy as np

    plt = pyplot()
    fig, axes = grid(plt, len(runs))
    for ax, run in zip(axes, runs):
        lo, hi = math.inf, 0.0
        if not run.has_latencies:  # the side file is missing (Run.notes says why): statistics only
            ax.text(0.5, 0.5, "raw latencies not available\n(latencies side file missing)", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_title(wrap(run.short_label if len(runs) > 1 else run.label), fontsize=10)
            continue
        for name, color in (("baseline", BASELINE_COLOR), ("branchy", BRANCHY_COLOR)):
            lat = run.data["variants"][name]["latency_ms"]
            x = np.sort(np.asarray(lat["samples"], dtype=float))
            y = np.arange(1, x.size + 1) / x.size
            ax.step(x, y, where="post", color=color, lw=1.8,
                    label=f"{name}: p50 {lat['p50']:.3g}, p99 {lat['p99']:.3g}")
            ax.axvline(lat["p50"], color=color, ls=":", lw=1)
            lo, hi = min(lo, float(x[0])), max(hi, float(x[-1]))
        if lo > 0 and hi / lo > 30:
            ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"latency ({latency_unit(run)})")
        ax.set_ylabel("fraction of timed calls ≤ latency")
        ax.set_title(wrap(run.short_label if len(runs) > 1 else run.label), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=MIN_FONT, title="ms", title_fontsize=MIN_FONT)
    fig.suptitle("Latency CDF: baseline vs branchy (dotted: p50)", fontsize=12)
    fig.tight_layout()
    return Plot(
        filename="latency_cdf.png",
        title="Latency distribution",
        caption=("Empirical CDF of the timed calls, baseline (blue) vs branchy (orange), one panel per "
                 "run; dotted lines mark the p50. Further left is faster."),
        alt=("Latency CDF per run: " + "; ".join(
            f"{r.short_label}: baseline p50 {r.baseline['latency_ms']['p50']:.3g}, branchy p50 "
            f"{r.branchy['latency_ms']['p50']:.3g} {latency_unit(r)}" for r in runs)),
        png=png(fig),
    )


def _thresholds_text(run: Run) -> str:
    ts = [t for t in run.env["thresholds"] if t is not None]
    return ", ".join(f"{t:.4g}" for t in ts) or "none"


def exit_histogram(runs: list[Run]) -> Plot:
    """Fraction of samples leaving at each exit, runs as grouped bars."""
    import numpy as np

    plt = pyplot()
    k_max = max(len(r.branchy["exit_fractions"]) for r in runs)
    same_k = len({len(r.branchy["exit_fractions"]) for r in runs}) == 1
    many = len(runs) > 3  # narrow bars: their values stand upright
    fig, ax = plt.subplots(figsize=(page_width(max(5.5, 1.6 * k_max * max(1, len(runs)) ** 0.5 + 3)),
                                    4.2 + 0.22 * (len(runs) + 1) // (1 if len(runs) <= 3 else 2)))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        fr = run.branchy["exit_fractions"]
        x = np.arange(len(fr)) - 0.4 + width * (i + 0.5)
        color = BRANCHY_COLOR if len(runs) == 1 else RUN_COLORS[i % len(RUN_COLORS)]
        bars = ax.bar(x, fr, width * 0.92, color=color,
                      label=wrap(f"{run.short_label} (T = {_thresholds_text(run)})", 60))
        for b, f in zip(bars, fr):
            ax.annotate(f"{100 * f:.1f}%", (b.get_x() + b.get_width() / 2, f), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=MIN_FONT,
                        rotation=90 if many else 0)
    same_exits = len({tuple((r.data.get("environment") or {}).get("model_exits") or ()) for r in runs}) == 1
    ticks = [(runs[0].exit_label(k) if same_exits else f"exit {k}") + (" (final)" if same_k and k == k_max - 1 else "")
             for k in range(k_max)]
    ax.set_xticks(np.arange(k_max), ticks)
    ax.set_ylim(0, 1.3 if many else 1.12)
    ax.set_ylabel("fraction of samples")
    ax.set_title("Where samples exit (branchy)", fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    legend_below(ax, len(runs))
    fig.tight_layout()
    return Plot(
        filename="exit_histogram.png",
        title="Exit histogram",
        caption="Fraction of test samples answered by each exit of the branchy network, per run "
                "(entropy thresholds T in the legend).",
        alt="Exit histogram: " + "; ".join(
            f"{r.short_label}: " + ", ".join(f"{r.exit_label(k)} {100 * f:.1f}%"
                                             for k, f in enumerate(r.branchy["exit_fractions"]))
            for r in runs),
        png=png(fig),
    )


def pareto_points(frontier: list[dict]) -> list[dict]:
    """The non-dominated points (no other point is at most as costly and at least as accurate)."""
    pts = sorted(frontier, key=lambda p: (p["relative_cost"], -p["accuracy"]))
    out: list[dict] = []
    best = -math.inf
    for p in pts:
        if p["accuracy"] > best:
            out.append(p)
            best = p["accuracy"]
    return out


def pareto(runs: list[Run]) -> Plot | Skipped:
    """Accuracy vs relative cost from each calibration record, chosen operating point marked."""
    groups: list[tuple[dict, list[Run]]] = []
    for run in runs:
        cal = run.data["calibration"]
        if cal is None:
            continue
        for g_cal, members in groups:
            if g_cal == cal:
                members.append(run)
                break
        else:
            groups.append((cal, [run]))
    title = "Accuracy vs cost (calibration)"
    if not groups:
        return Skipped("pareto.png", title,
                       "no results file holds a calibration record (calibration is null), "
                       "so there is no accuracy-versus-cost frontier to plot")
    plt = pyplot()
    fig, axes = grid(plt, len(groups), width=5.2, height=4.2)
    alts = []
    for ax, (cal, members) in zip(axes, groups):
        front = cal.get("frontier") or []
        if front:
            ax.scatter([p["relative_cost"] for p in front],
                       [100 * p["accuracy"] for p in front], s=12, color="#999999",
                       label="swept thresholds", zorder=2)
            par = pareto_points(front)
            ax.step([p["relative_cost"] for p in par], [100 * p["accuracy"] for p in par],
                    where="post", color=BASELINE_COLOR, lw=1.6, label="Pareto frontier", zorder=3)
        val = cal["validation"]
        ts = cal.get("thresholds")
        t_text = ", ".join(f"{t:.4g}" for t in ts if t is not None) if ts else "?"
        ax.scatter([val["relative_cost"]], [100 * val["accuracy"]], marker="*", s=220,
                   color="#C44E52", edgecolor="black", zorder=5, label=f"chosen (T = {t_text})")
        ax.axvline(1.0, color="black", ls=":", lw=1, label="baseline cost")
        ax.set_xlabel(wrap(f"relative cost, from {cost_source_name(cal.get('cost_source'))} (1.0 = baseline)", 50))
        ax.set_ylabel("accuracy on validation split (%)")
        who = ", ".join(f"R{m.index}" for m in members)
        method = cal.get("method")
        sub = f" · {method} {cal.get('target')}" if method else ""
        ax.set_title(wrap(f"{who}: {members[0].env['model']} · {members[0].env['dataset']}{sub}", 44),
                     fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=MIN_FONT, loc="lower right")
        alts.append(f"{who}: {len(front)} frontier points; chosen point accuracy "
                    f"{100 * val['accuracy']:.2f}% at relative cost {val['relative_cost']:.3g}")
    fig.suptitle("Accuracy vs relative cost (validation split)", fontsize=12)
    fig.tight_layout(w_pad=2.0)
    skipped = [f"R{r.index}" for r in runs if r.data["calibration"] is None]
    caption = ("Accuracy against relative cost for the swept entropy thresholds (grey), their "
               "Pareto frontier (line) and the chosen operating point (star), from the calibration "
               "record; runs with the same record share a panel.")
    if skipped:
        caption += f" No calibration record in {', '.join(skipped)}."
    return Plot(filename="pareto.png", title=title, caption=caption,
                alt="Accuracy vs relative cost: " + "; ".join(alts), png=png(fig))


def _energy_bars(ax: Any, runs: list[Run], key: str) -> bool:
    """Grouped bars baseline/branchy with 95% CI; hatched when estimated. False if nothing to draw."""
    drawn = False
    labels = []
    wide = 22 if len(runs) <= 4 else 16
    for i, run in enumerate(runs):
        labels.append(wrap(run.short_label, wide))
        for j, (name, color) in enumerate((("baseline", BASELINE_COLOR), ("branchy", BRANCHY_COLOR))):
            energy = run.data["variants"][name]["energy"]
            est = energy.get(key) if energy else None
            if est is None:
                continue
            med = est["median"]
            lo, hi = est["ci95"] or (med, med)   # one trial: no interval, no error bar
            x = i + (j - 0.5) * 0.38
            estimated = energy["kind"] == "estimated"
            ax.bar(x, med, 0.36, color=color, hatch="//" if estimated else None,
                   edgecolor="white" if estimated else color,
                   yerr=[[max(0.0, med - lo)], [max(0.0, hi - med)]], capsize=4, ecolor="black")
            ax.annotate(energy["kind"], (x, max(hi, med)), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=MIN_FONT, rotation=90 if len(runs) > 3 else 0)
            drawn = True
    ax.set_xticks(range(len(runs)), labels, fontsize=MIN_FONT)
    ax.set_ylabel("mJ per inference")
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.3 if len(runs) > 3 else 0.15)  # room for the kinds written above the bars
    return drawn


def energy(runs: list[Run]) -> Plot | Skipped:
    """Energy per inference (median, 95% CI), total and idle-subtracted, baseline vs branchy."""
    title = "Energy per inference"
    if all(r.baseline["energy"] is None and r.branchy["energy"] is None for r in runs):
        return Skipped("energy.png", title, "no results file holds an energy reading")
    from matplotlib.patches import Patch

    plt = pyplot()
    has_dynamic = any((r.data["variants"][v]["energy"] or {}).get("dynamic_per_inference_mj")
                      for r in runs for v in ("baseline", "branchy"))
    panels = [("per_inference_mj", "total")] + (
        [("dynamic_per_inference_mj", "dynamic (idle subtracted)")] if has_dynamic else [])
    width = max(5.0, 1.9 * len(runs) + 2.5)
    stacked = width * len(panels) > page_width(width * len(panels))  # too wide side by side: one above the other
    shape = (len(panels), 1) if stacked else (1, len(panels))
    fig, axes = plt.subplots(*shape, figsize=(page_width(width * shape[1]), 4.4 * shape[0]), squeeze=False)
    for ax, (key, name) in zip(axes.ravel(), panels):
        _energy_bars(ax, runs, key)
        ax.set_title(f"Energy per inference: {name}", fontsize=11)
    handles = [Patch(color=BASELINE_COLOR, label="baseline"), Patch(color=BRANCHY_COLOR, label="branchy"),
               Patch(facecolor="#bbbbbb", label="measured (power sensor)"),
               Patch(facecolor="#bbbbbb", hatch="//", edgecolor="white", label="estimated (power model)")]
    fig.legend(handles=handles, fontsize=9, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.08 / shape[0], 1, 1))
    kinds = sorted({r.data["variants"][v]["energy"]["kind"] for r in runs for v in ("baseline", "branchy")
                    if r.data["variants"][v]["energy"]})
    return Plot(
        filename="energy.png",
        title=title,
        caption=("Median energy per inference in mJ with 95% confidence intervals over trials, baseline "
                 "(blue) vs branchy (orange); hatched bars are estimated from a power model, solid bars "
                 "measured by a power sensor. Kinds in this report: " + ", ".join(kinds) + "."),
        alt="Energy per inference: " + "; ".join(
            f"{r.short_label}: " + ", ".join(
                f"{v} {r.data['variants'][v]['energy']['per_inference_mj']['median']:.3g} mJ "
                f"({r.data['variants'][v]['energy']['kind']})"
                for v in ("baseline", "branchy") if r.data["variants"][v]["energy"])
            for r in runs),
        png=png(fig),
    )


def make_plots(runs: list[Run]) -> list[Plot | Skipped]:
    """All report plots in display order; a plot with no data comes back as Skipped."""
    plots = [latency_cdf(runs), exit_histogram(runs), pareto(runs), energy(runs)]
    per_exit = energy_per_exit(runs)
    return plots + ([per_exit] if isinstance(per_exit, Plot) else [])  # drawn only for results that have it
