"""Markdown and HTML reports with plots, built from one or many results files alone."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.results import Run, load_results, load_runs, validate_results
from edgebranchy.util.files import atomic_write_bytes, atomic_write_text

__all__ = ["ReportFiles", "Run", "build_report", "load_results", "load_runs", "validate_results"]


@dataclass(frozen=True)
class ReportFiles:
    """What build_report wrote."""

    directory: Path
    markdown: Path
    html: Path
    plots: list[Path]
    skipped: list[str]   # "<file>: <reason>" for plots not drawn


def build_report(results_paths: list[str | os.PathLike], out_dir: str | os.PathLike,
                 title: str | None = None) -> ReportFiles:
    """Validate every results file, then write report.md, report.html and the PNG plots to out_dir."""
    from edgebranchy.report.plots import PLOT_FILES, Plot, make_plots
    from edgebranchy.report.render import render_html, render_markdown

    runs = load_runs(list(results_paths))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EdgeBranchyError(f"report directory {out} exists and is not a directory")
    plots = make_plots(runs)
    markdown = render_markdown(runs, plots, title)
    page = render_html(runs, plots, title)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [atomic_write_bytes(out / p.filename, p.png) for p in plots if isinstance(p, Plot)]
        # A plot skipped now must not leave an older report's PNG that contradicts this one.
        for name in set(PLOT_FILES) - {p.filename for p in plots if isinstance(p, Plot)}:
            (out / name).unlink(missing_ok=True)
        md_path = atomic_write_text(out / "report.md", markdown)
        html_path = atomic_write_text(out / "report.html", page)
    except OSError as e:
        raise EdgeBranchyError(f"cannot write the report to {out}: {e}") from None
    return ReportFiles(directory=out, markdown=md_path, html=html_path, plots=written,
                       skipped=[f"{p.filename}: {p.reason}" for p in plots if not isinstance(p, Plot)])
