"""Assemble the runs of an `edgebranchy.results` document (schema in `edgebranchy.artifact.results`) from
measured trials, and write the document with its latencies side file."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

import os

from edgebranchy.artifact.results import SCHEMA, SCHEMA_VERSION, run_label, unique_labels
from edgebranchy.measure.latency import ci95_across_trials, per_trial_table, summarize
from edgebranchy.bench.quality import energy_summary
from edgebranchy.bench.trials import VARIANTS, Measured


def variant_summary(recs: list[dict], labels: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """Accuracy, latency percentiles and intervals, throughput and energy of one variant's trials."""
    all_lat = [v for r in recs for v in r["latency_ms"]]
    s = summarize(all_lat)
    trials = per_trial_table([r["latency_ms"] for r in recs])   # the trials are the replicates, not the calls
    total_s = sum(r["energy"]["seconds"] for r in recs)
    energy = energy_summary(recs)  # usable windows only; flagged ones are listed, never averaged
    out = {
        "accuracy": float(np.mean(labels == y)),
        "latency_ms": {"per": "sample" if batch_size == 1 else "batch", "samples": all_lat,
                       **{k: s[k] for k in ("p50", "p90", "p99", "p999", "mean", "trimmed")},
                       # the mean of per-trial means (Student t); one trial has no interval
                       "ci95": list(ci95_across_trials(trials["mean"])) if len(recs) > 1 else None,
                       "trials": trials},
        "throughput_sps": sum(r["inferences"] for r in recs) / total_s if total_s > 0 else None,
        "energy": energy if energy and energy["per_inference_mj"] is not None else None,
    }
    if energy and energy["per_inference_mj"] is None:
        out["energy_refused"] = energy
    return out


def exit_summary(labels: np.ndarray, exits: np.ndarray, y: np.ndarray, num_exits: int) -> dict:
    """Where the branchy variant's samples left, and how accurate each exit was."""
    counts = np.bincount(exits, minlength=num_exits)
    return {"exit_counts": counts.tolist(), "exit_fractions": (counts / len(y)).tolist(),
            "exit_accuracy": [float(np.mean(labels[exits == k] == y[exits == k])) if c else None
                              for k, c in enumerate(counts)]}


def assemble_results(*, environment: dict, config: dict, idle, measured: Measured, y: np.ndarray, batch_size: int,
                     num_exits: int, segment_latency_ms: list[float], calibration: dict | None,
                     speculate: bool = False) -> dict:
    """One run of a results document: environment, config, idle power, both variants, the calibration record
    (the raw latencies still inline under variants.*.latency_ms.samples; `results_document` moves them out)."""
    results = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "config": config,
        "idle": {"watts": idle.watts, "seconds": idle.seconds, "kind": idle.kind, "source": idle.source,
                 "flag": idle.flag, "provenance": idle.provenance},
        "variants": {},
        "calibration": calibration,
    }
    for name in VARIANTS:
        labels, exits = measured.first[name]
        v = variant_summary(measured.trials[name], labels, y, batch_size)
        if name == "branchy":
            v.update(exit_summary(labels, exits, y, num_exits))
            v["segment_latency_ms"] = segment_latency_ms
            v["speculation"] = {"on": speculate, "discarded_wait_ms":
                                summarize(measured.discarded_ms) if measured.discarded_ms else None}
        results["variants"][name] = v
    # the same samples answered by both: discordant counts give the accuracy difference a paired interval
    from edgebranchy.artifact.gains import discordant

    results["accuracy_pairs"] = discordant(measured.first["baseline"][0] == y, measured.first["branchy"][0] == y)
    return results


def results_document(out: str | os.PathLike, runs: list[dict]) -> dict:
    """The version-3 document of `runs` (ids and labels set, labels made distinct), with the raw latencies
    moved to OUT.latencies.npz (written atomically here); the runs given are not modified."""
    from edgebranchy.artifact.latencies import write_latencies

    labels = unique_labels([r.get("label") or run_label(r) for r in runs])
    slim, arrays = [], {}
    for i, (run, label) in enumerate(zip(runs, labels), start=1):
        rid = run.get("id") or f"r{i}"
        variants = {}
        for name, v in run["variants"].items():
            lat = dict(v["latency_ms"])
            if "samples" in lat:
                arrays[f"{rid}/{name}"] = lat.pop("samples")
                lat["count"] = len(arrays[f"{rid}/{name}"])
            variants[name] = {**v, "latency_ms": lat}
        slim.append({"id": rid, "label": label, **{k: v for k, v in run.items() if k not in ("id", "label")},
                     "variants": variants})
    name, sha = write_latencies(out, arrays) if arrays else (None, None)
    return {"schema": SCHEMA, "version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runs": slim, "latencies": name, "latencies_sha256": sha}
