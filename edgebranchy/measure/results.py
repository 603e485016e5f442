"""Assemble the `edgebranchy.results` document (schema in `edgebranchy.artifact.results`) from measured trials."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from edgebranchy.artifact.results import SCHEMA, SCHEMA_VERSION
from edgebranchy.measure.latency import ci95_across_trials, median_ci95, summarize
from edgebranchy.measure.trials import VARIANTS, Measured


def variant_summary(recs: list[dict], labels: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """Accuracy, latency percentiles and intervals, throughput and energy of one variant's trials."""
    all_lat = [v for r in recs for v in r["latency_ms"]]
    s = summarize(all_lat)
    per_trial_mean = [float(np.mean(r["latency_ms"])) for r in recs]
    total_s = sum(r["energy"]["seconds"] for r in recs)
    return {
        "accuracy": float(np.mean(labels == y)),
        "latency_ms": {"per": "sample" if batch_size == 1 else "batch", "samples": all_lat,
                       **{k: s[k] for k in ("p50", "p90", "p99", "p999", "mean")},
                       "ci95": list(ci95_across_trials(per_trial_mean))},
        "throughput_sps": sum(r["inferences"] for r in recs) / total_s if total_s > 0 else None,
        "energy": {"kind": recs[0]["energy"]["kind"], "source": recs[0]["energy"]["source"],
                   "per_inference_mj": median_ci95([r["energy_per_inference_mj"] for r in recs]),
                   "dynamic_per_inference_mj": median_ci95([r["dynamic_per_inference_mj"] for r in recs]),
                   "trials": [r["energy"] for r in recs]},
    }


def exit_summary(labels: np.ndarray, exits: np.ndarray, y: np.ndarray, num_exits: int) -> dict:
    """Where the branchy variant's samples left, and how accurate each exit was."""
    counts = np.bincount(exits, minlength=num_exits)
    return {"exit_counts": counts.tolist(), "exit_fractions": (counts / len(y)).tolist(),
            "exit_accuracy": [float(np.mean(labels[exits == k] == y[exits == k])) if c else None
                              for k, c in enumerate(counts)]}


def assemble_results(*, environment: dict, config: dict, idle, measured: Measured, y: np.ndarray, batch_size: int,
                     num_exits: int, segment_latency_ms: list[float], calibration: dict | None,
                     speculate: bool = False) -> dict:
    """The results document: environment, config, idle power, both variants, the calibration record."""
    results = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "config": config,
        "idle": {"watts": idle.watts, "seconds": idle.seconds, "kind": idle.kind, "source": idle.source},
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
    return results
