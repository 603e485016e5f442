"""`edgebranchy compare BASE.json NEW.json`: the runs of two results files side by side, and a verdict a CI
can gate on.

Runs are matched by what they measured (model, dataset, device profile, backend/precision, batch size,
form: the label without its date); each metric goes old -> new with its relative change and 95%
interval (`artifact.gains.change`). A latency or energy metric regresses when it got worse by more
than `max_regression` AND the interval of the change excludes no change (beyond noise); the branchy
accuracy regresses when it dropped by more than `max_accuracy_drop` points.
"""
from __future__ import annotations

import os
from collections import defaultdict

from edgebranchy.artifact.gains import change, energy_kind
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.labels import match_key, run_labels

SCHEMA = "edgebranchy.compare"
SCHEMA_VERSION = 1

#: (metric, better: "lower" | "higher", gated)
METRICS = (
    ("branchy p50 ms", "lower", True), ("branchy mean ms", "lower", True), ("branchy p99 ms", "lower", True),
    ("baseline p50 ms", "lower", False), ("branchy energy mJ", "lower", True),
    ("gain p50", "higher", True), ("gain mean", "higher", True), ("branchy accuracy %", "higher", True),
)


def _runs_of(path: str | os.PathLike) -> list[dict]:
    """The runs of a results file (version 1: one run; version 2: each of its runs, raw latencies put back
    from the side file where it is there), validated by the report's loader."""
    from edgebranchy.report.results import load_runs

    return [r.data for r in load_runs([path])]


def _regressed(c: dict, better: str, name: str, max_regression: float, max_accuracy_drop: float) -> bool:
    if name == "branchy accuracy %":
        return c["diff"] is not None and c["diff"] < -max_accuracy_drop
    ch, ci = c["change"], c["ci95"]
    if ch is None:
        return False
    if better == "lower":
        return ch > max_regression and (ci is None or ci[0] > 0)
    return ch < -max_regression and (ci is None or ci[1] < 0)


def compare_runs(old: dict, new: dict, max_regression: float = 0.05, max_accuracy_drop: float = 0.5) -> list[dict]:
    """One entry per metric: name, old, new, change, ci95, diff, better, gated, regressed (and a note)."""
    out = []
    kinds = (energy_kind(old), energy_kind(new))
    for name, better, gated in METRICS:
        c = change(old, new, name)
        entry = {"metric": name, **c, "better": better, "gated": gated, "note": None}
        if name == "branchy energy mJ" and c["change"] is not None and kinds[0] != kinds[1]:
            entry["gated"], entry["note"] = False, f"not compared: energy {kinds[0]} vs {kinds[1]}"
        elif name == "branchy energy mJ" and kinds[0] is not None:
            entry["note"] = kinds[0]
        entry["regressed"] = bool(entry["gated"] and _regressed(c, better, name, max_regression, max_accuracy_drop))
        out.append(entry)
    return out


def compare_files(base: str | os.PathLike, new: str | os.PathLike, max_regression: float = 0.05,
                  max_accuracy_drop: float = 0.5) -> dict:
    """The comparison of two results files, as the JSON summary `compare --json` prints."""
    old_runs, new_runs = _runs_of(base), _runs_of(new)
    old_labels = [lab for lab, _ in run_labels(old_runs)]
    new_labels = [lab for lab, _ in run_labels(new_runs)]
    pool: dict[tuple, list[int]] = defaultdict(list)
    for i, run in enumerate(old_runs):
        pool[match_key(run)].append(i)
    matched, unmatched_new, used = [], [], set()
    for j, run in enumerate(new_runs):
        free = pool.get(match_key(run))
        if not free:
            unmatched_new.append(new_labels[j])
            continue
        i = free.pop(0)
        used.add(i)
        metrics = compare_runs(old_runs[i], run, max_regression, max_accuracy_drop)
        matched.append({"base": old_labels[i], "new": new_labels[j], "metrics": metrics,
                        "regressed": any(m["regressed"] for m in metrics)})
    unmatched_base = [old_labels[i] for i in range(len(old_runs)) if i not in used]
    if not matched:
        raise EdgeBranchyError(
            f"no run of {new} matches a run of {base} (same model, dataset, device profile, backend, batch size "
            f"and form); base has: {'; '.join(old_labels)}; new has: {'; '.join(new_labels)}")
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "base": str(base), "new": str(new),
            "max_regression": max_regression, "max_accuracy_drop_points": max_accuracy_drop,
            "matched": matched, "unmatched_base": unmatched_base, "unmatched_new": unmatched_new,
            "regressed": any(m["regressed"] for m in matched)}


def _value(name: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    if name.startswith("gain"):
        return f"{v:.2f}x"
    if name.endswith("%"):
        return f"{v:.2f}"
    return f"{v:.4g}"


def _change_text(m: dict) -> str:
    if m["metric"] == "branchy accuracy %":
        return "n/a" if m["diff"] is None else f"{m['diff']:+.2f} points"
    if m["change"] is None:
        return "n/a"
    text = f"{100 * m['change']:+.1f}%"
    if m["ci95"]:
        text += f" [{100 * m['ci95'][0]:+.1f}%, {100 * m['ci95'][1]:+.1f}%]"
    return text


def render_text(summary: dict) -> str:
    """The comparison for a person: per matched run a table old -> new, then unmatched runs and the outcome."""
    out = [f"compare {summary['base']} -> {summary['new']} (regression: worse by more than "
           f"{100 * summary['max_regression']:g}% beyond noise, or accuracy down more than "
           f"{summary['max_accuracy_drop_points']:g} points)"]
    for m in summary["matched"]:
        out += ["", m["new"] if m["base"] == m["new"] else f"{m['base']} -> {m['new']}"]
        rows = [("metric", "base", "new", "change [95% CI]", "")]
        for e in m["metrics"]:
            name = e["metric"].replace(" ms", " ms/sample")
            flag = "REGRESSED" if e["regressed"] else ("" if e["gated"] else "(not gated)")
            if e["note"] and not e["gated"]:
                flag = f"({e['note']})"
            elif e["note"]:
                name += f" ({e['note']})"
            rows.append((name, _value(e["metric"], e["old"]), _value(e["metric"], e["new"]), _change_text(e), flag))
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        for r in rows:
            out.append("  " + "  ".join(c.ljust(w) if k in (0, 3, 4) else c.rjust(w)
                                        for k, (c, w) in enumerate(zip(r, widths))).rstrip())
    for side in ("base", "new"):
        for label in summary[f"unmatched_{side}"]:
            out.append(f"unmatched run in {side} ({summary[side]}): {label}")
    bad = [m["new"] for m in summary["matched"] if m["regressed"]]
    out += [""] + ([f"REGRESSION in {len(bad)} of {len(summary['matched'])} matched run(s): " + "; ".join(bad)]
                   if bad else [f"no regression in {len(summary['matched'])} matched run(s)"])
    return "\n".join(out)
