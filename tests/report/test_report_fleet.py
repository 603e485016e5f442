"""A fleet's report (issue 24 item 4): eight runs from eight boards. Run labels name the board, and every
figure stays readable: no legend covers a bar or leaves the figure, no text is smaller than MIN_FONT, and no
figure is wider than the page shows unscaled (a wider one is shrunk, its text with it)."""
from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import build_results, write_results

pytest.importorskip("matplotlib")

BOARDS = [f"orin-{i}" for i in range(8)]


def _runs(tmp_path: Path):
    from edgebranchy.measure.exit_energy import energy_per_exit
    from edgebranchy.report.runs import load_runs

    paths = []
    for i, board in enumerate(BOARDS):
        counts = (5200 - 400 * i, 3000, 1800 + 400 * i)
        doc = build_results(exit_counts=counts, seed=i, energy_kind="measured" if i % 2 else "estimated")
        doc["environment"]["hostname"] = "ubuntu"  # the boards' hostnames say nothing: the inventory names do
        br = doc["variants"]["branchy"]
        br["segment_latency_ms"] = [0.03, 0.05, 0.08]
        br["energy_per_exit"] = energy_per_exit(list(counts), batch_size=1, segment_macs=[1e6, 2e6, 3e6],
                                                baseline_macs=5.5e6, baseline_mj=1.0, branchy_mj=0.6,
                                                segment_latency_ms=[0.03, 0.05, 0.08], branchy_watts=7.0,
                                                idle_watts=4.0)
        paths.append(write_results(tmp_path / f"{board}.json", doc))
    return load_runs(paths, BOARDS)


def test_fleet_labels_name_the_board(tmp_path):
    runs = _runs(tmp_path)
    assert [r.short_label for r in runs] == [f"R{i + 1}: {b}" for i, b in enumerate(BOARDS)]
    assert all(b in r.label for r, b in zip(runs, BOARDS))


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def test_eight_runs_legends_cover_no_bars_and_text_stays_readable(tmp_path, monkeypatch):
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

    from edgebranchy.report import energy_plots, plots
    from edgebranchy.report.figures import MIN_FONT, PAGE_IN, Plot, png

    checked, problems = {}, []

    def inspect(fig):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        name = fig.texts[0].get_text() if fig.texts else "|".join(ax.get_title() for ax in fig.axes)
        box = fig.bbox
        if fig.get_figwidth() > PAGE_IN + 1e-6:
            problems.append((name, "wider than the page", fig.get_figwidth()))
        small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
                 if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT]
        if small:
            problems.append((name, "text below MIN_FONT", small[:3]))
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
        for leg in legends:
            lb = leg.get_window_extent(r)
            if not (box.x0 - 1 <= lb.x0 and lb.x1 <= box.x1 + 1 and box.y0 - 1 <= lb.y0 and lb.y1 <= box.y1 + 1):
                problems.append((name, "legend clipped"))
            bars = [p for ax in fig.axes for p in ax.patches
                    if isinstance(p, Rectangle) and p.get_height() > 0 and p.get_visible()]
            if any(_overlap(lb, p.get_window_extent(r)) for p in bars):
                problems.append((name, "legend covers a bar"))
        checked[name] = len(legends)
        return png(fig)

    monkeypatch.setattr(plots, "png", inspect)
    monkeypatch.setattr(energy_plots, "png", inspect)
    runs = _runs(tmp_path)
    made = plots.make_plots(runs)
    assert not problems, problems
    assert [p.filename for p in made if isinstance(p, Plot)] == list(plots.PLOT_FILES)
    assert len(checked) == 5 and sum(checked.values()) >= 8 + 1 + 1 + 1  # the CDF panels, histogram, energy, per exit
    for p in made:  # for a look: the PNGs of this run
        (tmp_path / p.filename).write_bytes(p.png)
