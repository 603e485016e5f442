"""`edgebranchy report`: Markdown + HTML report with plots from one or many results files."""
from __future__ import annotations

import argparse

ORDER = 60


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="write a Markdown + HTML report with plots from results files",
        description=("Build report.md, a self-contained report.html and PNG plots from one or more "
                     "results files written by `edgebranchy bench`. Several files (devices, backends, "
                     "batch sizes) are compared side by side."),
    )
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="results file(s) from bench")
    p.add_argument("--out", required=True, metavar="REPORT_DIR",
                   help="directory for report.md, report.html and the plots (created if needed)")
    p.add_argument("--title", default=None, help="report title (default: models and device profiles)")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the report and say where it went."""
    from edgebranchy.report import build_report
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    for path in args.results:
        refuse_wrong_kind(path, "results", "report")
    files = build_report(args.results, args.out, title=args.title)
    for label, lines in files.verdicts:
        print(f"{label}: {lines[0]}")
        for warning in lines[1:]:
            print(f"  {warning}")
    print(f"report written to {files.html} (also {files.markdown.name} and "
          f"{len(files.plots)} PNG plot{'s' if len(files.plots) != 1 else ''} in {files.directory})")
    for note in files.skipped:
        print(f"  not drawn: {note}")
    return 0
