"""Plain-text tables of calibration results."""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError

Format = str | Callable[[Any], str]

# cells that read as numbers (with an optional unit suffix) align right
_NUMBER = re.compile(r"^(-|[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?\s*[x%]?|[-+]?inf|nan)$", re.IGNORECASE)


def _cell(value: Any, fmt: Format) -> str:
    if value is None:
        return "-"
    if callable(fmt):
        return fmt(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, Format]]) -> str:
    """An aligned plain-text table: one (key, header, format) per column, one dict per row.

    `format` is a format spec such as ".2f" or a callable returning the cell text;
    missing or None values print as "-". Numbers align right, text left.
    """
    if not columns:
        raise EdgeBranchyError("format_table needs at least one column")
    cells = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    numeric = [all(_NUMBER.match(r[i]) for r in cells) for i in range(len(columns))]
    widths = [max([len(header)] + [len(r[i]) for r in cells]) for i, (_, header, _) in enumerate(columns)]

    def line(texts: Sequence[str]) -> str:
        parts = [t.rjust(w) if num else t.ljust(w) for t, w, num in zip(texts, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line([h for _, h, _ in columns]), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def _percent(x: float) -> str:
    return f"{100.0 * x:.2f}"


def _fraction(x: float) -> str:
    return f"{x:.3f}"


def speedup_label(cost_source: str | None) -> str:
    """'expected speedup (from MACs)' or '(from measured costs)', from a calibration record's cost_source
    (MACs when it starts with 'flops', as `calibrate --cost flops` records it); no source, no suffix."""
    if cost_source is None:
        return "expected speedup"
    text = cost_source.lower()
    return "expected speedup (from " + ("MACs" if text.startswith("flops") or "mac" in text else "measured costs") + ")"


def _speedup(relative_cost: float | None) -> str | None:
    if relative_cost is None:
        return None
    return f"{1.0 / relative_cost:.2f}x" if relative_cost > 0 else "inf"


def calibration_table(validation: Mapping[str, Any], test: Mapping[str, Any] | None = None,
                      thresholds: Sequence[float] | None = None, cost_source: str | None = None) -> str:
    """Thresholds and exit fractions per exit, then accuracy, relative cost (a fraction of the baseline's,
    0-1, as the Pareto plot shows it) and expected speedup (1 / relative cost) on validation and, when
    given, test, side by side.

    `validation` and `test` are the "validation"/"test" entries of a calibration record, `cost_source`
    its "cost_source" (it names where the speedup comes from: MACs or measured costs).
    """
    fractions_v = list(validation["exit_fractions"])
    fractions_t = list(test["exit_fractions"]) if test is not None else None
    k = len(fractions_v)
    if thresholds is not None and len(thresholds) != k - 1:
        raise EdgeBranchyError(f"{k} exits need {k - 1} thresholds, got {len(thresholds)}")
    if fractions_t is not None and len(fractions_t) != k:
        raise EdgeBranchyError(f"validation has {k} exits but test has {len(fractions_t)}")

    exit_rows = []
    for i in range(k):
        row: dict[str, Any] = {"exit": i, "val": _percent(fractions_v[i])}
        if i == k - 1:
            row["threshold"] = "(last)"
        elif thresholds is not None:
            row["threshold"] = f"{thresholds[i]:.6g}"
        if fractions_t is not None:
            row["test"] = _percent(fractions_t[i])
        exit_rows.append(row)
    exit_cols: list[tuple[str, str, Format]] = [("exit", "exit", "d"), ("threshold", "threshold", "s"),
                                                ("val", "validation exits %", "s")]
    if fractions_t is not None:
        exit_cols.append(("test", "test exits %", "s"))

    splits = [("validation", validation)] + ([("test", test)] if test is not None else [])
    metrics = [("accuracy %", lambda d: _percent(d["accuracy"])),
               ("relative cost (0-1)", lambda d: _fraction(d["relative_cost"])),
               (speedup_label(cost_source), lambda d: _speedup(d["relative_cost"])),
               ("samples", lambda d: str(d["n"]))]
    metric_rows = [{"metric": name, **{split: get(d) for split, d in splits}} for name, get in metrics]
    metric_cols: list[tuple[str, str, Format]] = [("metric", "metric", "s")]
    metric_cols += [(split, split, "s") for split, _ in splits]
    return format_table(exit_rows, exit_cols) + "\n\n" + format_table(metric_rows, metric_cols)


def frontier_table(frontier: Sequence[Mapping[str, Any]], max_rows: int = 15, cost_source: str | None = None) -> str:
    """The accuracy-vs-cost frontier as a table, cheapest first, at most `max_rows` rows
    spread evenly over it (the first and last always shown); relative cost as a fraction 0-1."""
    if max_rows < 2:
        raise EdgeBranchyError(f"max_rows must be >= 2, got {max_rows}")
    points = sorted(frontier, key=lambda p: p["relative_cost"])
    if len(points) > max_rows:
        picks = np.unique(np.round(np.linspace(0, len(points) - 1, max_rows)).astype(int))
        points = [points[i] for i in picks]
    rows = [{"relative_cost": _fraction(p["relative_cost"]), "speedup": _speedup(p["relative_cost"]),
             "accuracy": _percent(p["accuracy"]),
             "thresholds": ", ".join(f"{t:.4g}" for t in p["thresholds"])} for p in points]
    return format_table(rows, [("relative_cost", "relative cost (0-1)", "s"),
                               ("speedup", speedup_label(cost_source), "s"),
                               ("accuracy", "accuracy %", "s"), ("thresholds", "thresholds", "s")])
