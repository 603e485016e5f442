"""`edgebranchy compare BASE.json NEW.json`: the runs of two results files side by side, and a verdict a CI
can gate on.

Runs are matched by what they measured (model, dataset, device profile, backend/precision, batch size,
form: the label without its date); each metric goes old -> new with its relative change and 95% interval
(`artifact.gains.change`: Welch's t over the two runs' trials, which are the replicates; calls are not).

What is gated is what a user means by a regression: branchy against its own baseline measured in the same
run (the gain of the trimmed mean latency, and the energy gain where both runs measured energy with a sensor),
and the branchy accuracy. The p50 and mean gains are shown, not gated: an early-exit latency is bimodal, and
when its exits split near half and half a trial's p50 jumps between the two modes, so its per-trial spread
hides a 20% slowdown (benchmarks/results/gate_noise.md); the mean follows the stalls of a loaded machine,
which move whole runs, so its trial-level interval is too narrow between runs (A/A z-scores' SD 1.4 at load
20, benchmarks/results/compare_gate.md). The trimmed mean (10% of the calls dropped at each end) moves smoothly
across the modes and ignores the stalls. Absolute latencies are shown, not gated: two runs minutes apart on a shared machine move
together, baseline included, and a baseline that moved is not a regression of early exit. A gain regresses
when it fell by more than max_regression and the 95% interval of its change excludes no change (beyond the
noise the trials show); a side with fewer than 2 trials gives no interval and cannot fail the gate (the
outcome says so). The branchy accuracy regresses when it dropped by more than `max_accuracy_drop` points.
The false-alarm and detection rates of this gate are measured by benchmarks/compare_gate.py.
"""
from __future__ import annotations

import os
from collections import defaultdict

from edgebranchy.artifact.gains import change, energy_kind
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.labels import match_key, run_labels
from edgebranchy.report.verdict import with_interval

SCHEMA = "edgebranchy.compare"
SCHEMA_VERSION = 3

#: why the p50 and mean gains are shown, not gated
NOT_GATED = {"gain p50": "shown, not gated: a bimodal p50 jumps between trials",
             "gain mean": "shown, not gated: stalls move it between runs"}

#: (metric, better: "lower" | "higher", gated)
METRICS = (
    ("gain p50", "higher", False), ("gain mean", "higher", False), ("gain trimmed", "higher", True),
    ("gain p99", "higher", False),
    ("energy gain", "higher", True),
    ("branchy p50 ms", "lower", False), ("branchy mean ms", "lower", False), ("branchy p99 ms", "lower", False),
    ("baseline p50 ms", "lower", False), ("branchy energy mJ", "lower", False),
    ("branchy accuracy %", "higher", True),
)


def _runs_of(path: str | os.PathLike) -> list[dict]:
    """The runs of a results file (version 1: one run; version 2 and 3: each of its runs, raw latencies put
    back from the side file where it is there), validated by the report's loader."""
    from edgebranchy.report.runs import load_runs

    return [r.data for r in load_runs([path])]


def _regressed(c: dict, better: str, name: str, max_regression: float, max_accuracy_drop: float) -> bool:
    if name == "branchy accuracy %":
        return c["diff"] is not None and c["diff"] < -max_accuracy_drop
    ch, ci = c["change"], c["ci95"]
    if ch is None or ci is None:
        return False
    if better == "lower":
        return ch > max_regression and ci[0] > 0
    return ch < -max_regression and ci[1] < 0


def _energy_gate(entry: dict, kinds: tuple) -> None:
    """Energy is gated only where both runs measured it with a sensor, of the same kind."""
    if entry["change"] is None:
        entry["gated"] = False
    elif kinds[0] != kinds[1]:
        entry["gated"], entry["note"] = False, f"not compared: energy {kinds[0]} vs {kinds[1]}"
    elif kinds[0] != "measured":
        entry["gated"], entry["note"] = False, f"{kinds[0]}: not gated"
    else:
        entry["note"] = entry["note"] or kinds[0]


def compare_runs(old: dict, new: dict, max_regression: float = 0.05, max_accuracy_drop: float = 0.5) -> list[dict]:
    """One entry per metric: name, old, new, change, ci95, diff, trials, better, gated, testable, regressed,
    note."""
    out = []
    kinds = (energy_kind(old), energy_kind(new))
    for name, better, gated in METRICS:
        c = change(old, new, name)
        entry = {"metric": name, **c, "better": better, "gated": gated}
        if name == "energy gain":
            _energy_gate(entry, kinds)
        elif name in NOT_GATED and c["change"] is not None:
            entry["note"] = entry["note"] or NOT_GATED[name]
        elif name == "branchy energy mJ" and c["change"] is not None and kinds[0] is not None and kinds[0] == kinds[1]:
            entry["note"] = entry["note"] or kinds[0]
        # a gated metric without an interval cannot tell a change from noise: it is reported, never failed
        entry["testable"] = bool(entry["gated"] and c["change"] is not None and
                                 (c["ci95"] is not None or name == "branchy accuracy %"))
        entry["regressed"] = bool(entry["testable"] and
                                  _regressed(c, better, name, max_regression, max_accuracy_drop))
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
                        "trials": {"base": int(old_runs[i]["config"]["trials"]), "new": int(run["config"]["trials"])},
                        "untested": [m["metric"] for m in metrics if m["gated"] and not m["testable"]
                                     and m["change"] is not None],
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
    if name.startswith("gain") or name.endswith(" gain"):
        return f"{v:.3g}x" if v < 1 else f"{v:.2f}x"
    if name.endswith("%"):
        return f"{v:.2f}"
    return f"{v:.4g}"


def _change_text(m: dict) -> str:
    if m["metric"] == "branchy accuracy %":
        return "n/a" if m["diff"] is None else f"{m['diff']:+.2f} points"
    if m["change"] is None:
        return "n/a"
    value, ci = with_interval(m["change"], m["ci95"], "pct", start=1)
    if ci:
        return value + ci
    return f"{value} ({m['note']})" if (m.get("note") or "").startswith("no interval") else value


def _flag(e: dict) -> str:
    if e["regressed"]:
        return "REGRESSED"
    if not e["gated"]:
        return f"({e['note']})" if e["note"] and not e["note"].startswith("no interval") else "(not gated)"
    return "" if e["testable"] or e["change"] is None else "(untested: no interval)"


def render_text(summary: dict) -> str:
    """The comparison for a person: per matched run a table old -> new, then unmatched runs and the outcome."""
    pct = 100 * summary["max_regression"]
    out = [f"compare {summary['base']} -> {summary['new']} (regression: branchy's gain over its own baseline, of the "
           f"trimmed mean latency, worse by more than {pct:g}% with its 95% interval excluding no change, "
           "or accuracy down more than "
           f"{summary['max_accuracy_drop_points']:g} points; absolute latencies shown, not gated)"]
    for m in summary["matched"]:
        t = m["trials"]
        out += ["", m["new"] if m["base"] == m["new"] else f"{m['base']} -> {m['new']}",
                f"  trials (the replicates of each interval): base {t['base']}, new {t['new']}"]
        rows = [("metric", "base", "new", "change [95% CI]", "")]
        for e in m["metrics"]:
            name = e["metric"].replace(" ms", " ms/sample")
            if e["note"] and e["gated"] and not e["note"].startswith("no interval"):
                name += f" ({e['note']})"
            rows.append((name, _value(e["metric"], e["old"]), _value(e["metric"], e["new"]), _change_text(e),
                         _flag(e)))
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        for r in rows:
            out.append("  " + "  ".join(c.ljust(w) if k in (0, 3, 4) else c.rjust(w)
                                        for k, (c, w) in enumerate(zip(r, widths))).rstrip())
        if m["untested"]:
            few = min(t["base"], t["new"])
            why = (f"{few} trial{'s' if few != 1 else ''} on one side" if few < 2 else
                   "a results file of version 1 or 2 records no per-trial values for it")
            out.append(f"  cannot tell noise from change for {', '.join(m['untested'])}: {why}; bench both with "
                       "--trials 5 or more")
    for side in ("base", "new"):
        for label in summary[f"unmatched_{side}"]:
            out.append(f"unmatched run in {side} ({summary[side]}): {label}")
    bad = [m["new"] for m in summary["matched"] if m["regressed"]]
    out += [""] + ([f"REGRESSION in {len(bad)} of {len(summary['matched'])} matched run(s): " + "; ".join(bad)]
                   if bad else [f"no regression in {len(summary['matched'])} matched run(s)"])
    return "\n".join(out)
