"""`edgebranchy compare`: two results files side by side; exit status 1 on a regression (for a CI gate)."""
from __future__ import annotations

import argparse

ORDER = 65


def regression(text: str) -> float:
    """'5%' or '5' (percent) -> 0.05; from 0 to 1000%."""
    body = text.strip()
    body = body[:-1].strip() if body.endswith("%") else body
    try:
        v = float(body)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 5%, got {text!r}") from None
    if not 0 <= v <= 1000 or v != v:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0% to 1000%, got {text}")
    return v / 100.0


def points(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of accuracy points, got {text!r}") from None
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100 points, got {text}")
    return v


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `compare` subcommand."""
    p = subparsers.add_parser(
        "compare",
        help="compare two results files; exit status 1 on a regression",
        description=("Match the runs of BASE.json and NEW.json (same model, dataset, device profile, backend, "
                     "batch size and form) and print each metric old -> new with its change and 95% interval, "
                     "from the trials of each run (the replicates; calls within a trial are not). Gated: branchy "
                     "against its own baseline in the same run (the p50 and mean gains; the energy gain where "
                     "both runs measured energy with a sensor) and the branchy accuracy; absolute latencies are "
                     "shown, not gated. Exit status: 0 no regression, 1 a gated gain got worse by more than "
                     "--max-regression with its interval excluding no change, or the accuracy dropped by more than "
                     "--max-accuracy-drop points, 2 bad input. A run of one trial gives no interval and cannot "
                     "fail the gate (the output says so). Measured false-alarm and detection rates: "
                     "benchmarks/results/compare_gate.md."),
    )
    p.add_argument("base", metavar="BASE.json", help="the reference results file")
    p.add_argument("new", metavar="NEW.json", help="the results file to check against it")
    p.add_argument("--max-regression", type=regression, default=0.05, metavar="PCT",
                   help="largest allowed worsening of a gain (branchy against its baseline), e.g. 5%% (default: 5%%)")
    p.add_argument("--max-accuracy-drop", type=points, default=0.5, metavar="POINTS",
                   help="largest allowed drop of the branchy accuracy, in percentage points (default: 0.5)")
    p.add_argument("--json", action="store_true",
                   help="print a machine-readable JSON summary instead of the tables (default: tables)")
    return p


def run(args: argparse.Namespace) -> int:
    """Compare, print, and return 1 when anything regressed."""
    import json

    from edgebranchy.report.comparison import compare_files, render_text
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    for path in (args.base, args.new):
        refuse_wrong_kind(path, "results", "compare")
    summary = compare_files(args.base, args.new, args.max_regression, args.max_accuracy_drop)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_text(summary))
    return 1 if summary["regressed"] else 0
