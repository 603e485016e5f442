"""Run labels: what a report and `compare` call each run, distinct even for runs from the same file.

A run's own `label` wins (bench writes one per run of a sweep); else model [· dataset] [· board] · device
profile · backend/precision · batch N [· form] · date; the data set where the runs differ in it, the board (a
fleet's inventory name, else the host) where a fleet's runs or runs on one device profile differ in it. Two runs never share a label: the time of day, then
'#k', tells equal ones apart. The short label ("R2: rpi5 · batch 8") keeps only what varies.
"""
from __future__ import annotations

from collections import Counter


def form_of(run: dict) -> str | None:
    """The form the run measured ('segments' / 'single-graph'), or None where it does not say; the
    environment's batch-1 choice counts only at batch 1 (batches always run the segments)."""
    env, cfg = run.get("environment", {}), run.get("config") or {}
    form = run.get("form") or cfg.get("form") or (env.get("batch1_form") if cfg.get("batch_size") == 1 else None)
    return form if isinstance(form, str) else None


def label_parts(run: dict) -> dict[str, str]:
    """The facts that name a run, in label order; 'date' and 'time' come from its `created` stamp."""
    env, cfg = run["environment"], run["config"]
    created = str(run.get("created") or "")
    board = run.get("board") or env.get("hostname")  # a fleet's board (its inventory name), else the host
    parts = {"model": env["model"], "dataset": env["dataset"], "board": str(board or ""), "device": env["profile"],
             "backend": f"{env['backend']}/{env['precision']}", "batch": f"batch {cfg['batch_size']}"}
    form = form_of(run)
    if form:
        parts["form"] = form
    parts["date"] = created[:10]
    parts["time"] = created[11:16]
    return parts


def match_key(run: dict) -> tuple:
    """What makes two runs 'the same measurement' across files: the label without date and time."""
    p = label_parts(run)
    return tuple(p.get(k) for k in ("model", "dataset", "device", "backend", "batch", "form"))


def _boards_tell_apart(runs: list[dict], parts: list[dict]) -> bool:
    """Whether labels name the board: a fleet's runs (named boards) that differ in it, or runs on the same device
    profile from different hosts."""
    if len({p["board"] for p in parts}) < 2:
        return False
    if any(r.get("board") for r in runs):
        return True
    return any(len({p["board"] for p in parts if p["device"] == d}) > 1 for d in {p["device"] for p in parts})


def run_labels(runs: list[dict]) -> list[tuple[str, str]]:
    """(label, short label) for each run, in order; labels are distinct, short labels start with 'R<n>: '."""
    parts = [label_parts(r) for r in runs]
    keys = ["model", "device", "backend", "batch", "form", "date"]
    name_board = _boards_tell_apart(runs, parts)
    if name_board:
        keys.insert(1, "board")
    if len({p["dataset"] for p in parts}) > 1:
        keys.insert(1, "dataset")
    labels = []
    for r, p in zip(runs, parts):
        own = r.get("label")
        labels.append(own if isinstance(own, str) and own.strip() else
                      " · ".join(p[k] for k in keys if p.get(k)))
    counts = Counter(labels)
    for i, p in enumerate(parts):   # same label twice: add the time of day
        if counts[labels[i]] > 1 and p["time"]:
            labels[i] = f"{labels[i]} {p['time']}"
    seen: Counter = Counter()
    counts = Counter(labels)
    for i in range(len(labels)):
        if counts[labels[i]] > 1:
            seen[labels[i]] += 1
            labels[i] = f"{labels[i]} #{seen[labels[i]]}"
    varying = [k for k in ["model", "dataset", "board", "device", "backend", "batch", "form", "date", "time"]
               if len({p.get(k) for p in parts}) > 1 and (k != "board" or name_board)]
    shorts = []
    for n, (p, label) in enumerate(zip(parts, labels), start=1):
        if len(runs) == 1 or not varying or any(isinstance(r.get("label"), str) for r in runs):
            shorts.append(f"R{n}: {label}")
        else:
            shorts.append(f"R{n}: " + " · ".join(str(p.get(k) or "-") for k in varying))
    return list(zip(labels, shorts))
