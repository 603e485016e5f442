"""Markdown and HTML reports with plots, built from one or many results files alone."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgebranchy.report.runs import Run, load_results, load_runs, validate_results
from edgebranchy.util.files import atomic_write_bytes, writing
from edgebranchy.util.kinds import REPORT_MARKER, REPORT_SCHEMA
from edgebranchy.util.outputs import check_report_output

__all__ = ["ReportFiles", "Run", "build_report", "load_results", "load_runs", "validate_results"]


@dataclass(frozen=True)
class ReportFiles:
    """What build_report wrote."""

    directory: Path
    markdown: Path
    html: Path
    plots: list[Path]
    skipped: list[str]   # "<file>: <reason>" for plots not drawn
    verdicts: list[tuple[str, list[str]]] = field(default_factory=list)   # (short label, verdict lines) per run


def build_report(results_paths: list[str | os.PathLike], out_dir: str | os.PathLike,
                 title: str | None = None, boards: list[str] | None = None) -> ReportFiles:
    """Validate every results file, then write report.md, report.html and the PNG plots to out_dir (`boards`:
    the board each file comes from, named in the run labels)."""
    from edgebranchy.report.figures import Plot
    from edgebranchy.report.plots import PLOT_FILES, make_plots
    from edgebranchy.report.render import render_html, render_markdown
    from edgebranchy.report.verdict import verdict_lines

    streams = _streams_docs(results_paths)
    out = Path(out_dir)
    if streams:
        from edgebranchy.report.streams import STREAM_PLOTS, stream_plots, streams_html, streams_markdown

        check_report_output(out, list(results_paths), ["report.md", "report.html", REPORT_MARKER, *STREAM_PLOTS])
        runs, plots = [], stream_plots(streams)
        markdown, page = streams_markdown(streams, plots, title), streams_html(streams, plots, title)
        stale = []
    else:
        runs = load_runs(list(results_paths), boards)
        check_report_output(out, list(results_paths), ["report.md", "report.html", REPORT_MARKER, *PLOT_FILES])
        plots = make_plots(runs)
        markdown = render_markdown(runs, plots, title)
        page = render_html(runs, plots, title)
        # A plot skipped now must not leave an older report's PNG that contradicts this one.
        stale = sorted(set(PLOT_FILES) - {p.filename for p in plots if isinstance(p, Plot)})
    files = {p.filename: p.png for p in plots if isinstance(p, Plot)}
    files[REPORT_MARKER] = (json.dumps({"schema": REPORT_SCHEMA, "schema_version": 1,
                                        "results": [str(r) for r in results_paths]}, indent=2) + "\n").encode()
    files["report.md"] = markdown.encode("utf-8")
    files["report.html"] = page.encode("utf-8")  # last: the page appears once everything it shows is there
    _write_staged(out, files, stale)
    written = [out / p.filename for p in plots if isinstance(p, Plot)]
    return ReportFiles(directory=out, markdown=out / "report.md", html=out / "report.html", plots=written,
                       skipped=[f"{p.filename}: {p.reason}" for p in plots if not isinstance(p, Plot)],
                       verdicts=[(r.short_label, verdict_lines(r.data)) for r in runs])


def _streams_docs(paths) -> list[tuple[str, dict]]:
    """The validated `bench --streams` documents among `paths` ([] when there are none); a mix of streams and
    results files is refused (they make different reports)."""
    from edgebranchy.artifact.streams import SCHEMA, validate_streams
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.kinds import _json_schema

    schemas = [_json_schema(Path(p), limit=64 << 20) for p in paths]
    if SCHEMA not in schemas:
        return []
    if any(s != SCHEMA for s in schemas):
        raise EdgeBranchyError("give streams files (schema edgebranchy.streams) to a report of their own: they are not "
                               "trial results")
    from edgebranchy.util.readers import load_json

    return [(Path(p).name, validate_streams(load_json(p, "results"), str(p))) for p in paths]


def _write_staged(out: Path, files: dict[str, bytes], stale: list[str]) -> None:
    """Write every file into a temporary folder inside `out` first, then rename them into place: a write
    that fails (full disk, read-only) leaves no half report, and other files in `out` stay."""
    created = not out.exists()
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".report.", dir=out))
        try:
            for name, data in files.items():
                atomic_write_bytes(tmp / name, data)
            for name in files:
                os.replace(tmp / name, out / name)
            for name in stale:
                (out / name).unlink(missing_ok=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                shutil.rmtree(out, ignore_errors=True)  # ours alone: it did not exist a moment ago
            raise
        shutil.rmtree(tmp, ignore_errors=True)
