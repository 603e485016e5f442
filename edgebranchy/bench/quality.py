"""The parts of a bench result that say whether its figures can be trusted and compared.

Working on the trial records of `bench.trials` (each with its `energy`
reading, `window` wall-clock edges and `conditions`), this module

- summarises energy over the usable windows only (a flagged reading is
  listed with its reason, never folded into a median);
- counts throttled trials and states what excluding them does to the medians;
- merges an external meter's CSV onto the trial windows (`--external-power`);
- derives energy per exit and the exit-rate drift check.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgebranchy.measure.latency import median_ci95


def energy_summary(recs: list[dict], key: str = "energy") -> dict | None:
    """kind, source, provenance and median energy per inference over the usable readings under `key`.

    None when no trial has a usable reading (`refused` then lists why, and the
    caller reports no figure).
    """
    with_reading = [r for r in recs if r.get(key)]
    if not with_reading:
        return None
    usable = [r for r in with_reading if not r[key].get("flag")]
    first = with_reading[0][key]
    out = {"kind": first["kind"], "source": first["source"], "provenance": first.get("provenance"),
           "usable_trials": len(usable), "trials_total": len(with_reading),
           "refused": [{"trial": r["trial"], "flag": r[key]["flag"]} for r in with_reading if r[key].get("flag")],
           "trials": [r[key] for r in with_reading]}
    if not usable:
        out["per_inference_mj"] = None
        return out
    per = [r[key]["joules"] / r["inferences"] * 1e3 for r in usable]
    index = [r["trial"] for r in usable]   # a ratio of two variants pairs them by trial
    out["per_inference_mj"] = median_ci95(per, index)
    if key == "energy":
        dyn = [r.get("dynamic_per_inference_mj") for r in usable]
        out["dynamic_per_inference_mj"] = median_ci95(dyn, index) if all(d is not None for d in dyn) else None
    out["watts"] = float(np.median([r[key]["watts"] for r in usable]))
    return out


def throttle_summary(trials: dict[str, list[dict]]) -> dict | None:
    """How many trials were throttled, why, and the latency p50 of each variant with and without them."""
    if not any(r.get("conditions") for recs in trials.values() for r in recs):
        return None
    per, reasons, total, hit = {}, [], 0, 0
    for name, recs in trials.items():
        bad = [r for r in recs if (r.get("conditions") or {}).get("throttled")]
        good = [r for r in recs if not (r.get("conditions") or {}).get("throttled")]
        total, hit = total + len(recs), hit + len(bad)
        for r in bad:
            reasons += [x for x in r["conditions"]["reasons"] if x not in reasons]
        all_lat = [v for r in recs for v in r["latency_ms"]]
        ok_lat = [v for r in good for v in r["latency_ms"]]
        per[name] = {"throttled": len(bad), "trials": len(recs),
                     "throttled_trials": [r["trial"] for r in bad],
                     "p50_ms": float(np.median(all_lat)) if all_lat else None,
                     "p50_unthrottled_ms": float(np.median(ok_lat)) if ok_lat else None}
    return {"throttled": hit, "trials": total, "reasons": reasons[:10], "variants": per}


def throttle_line(summary: dict | None) -> str:
    """One sentence for the log and the report."""
    if summary is None:
        return "throttling: not checked (no run conditions recorded)"
    if summary["throttled"] == 0:
        return f"throttling: none of {summary['trials']} trials throttled"
    parts = []
    for name, v in summary["variants"].items():
        a, b = v["p50_ms"], v["p50_unthrottled_ms"]
        parts.append(f"{name} p50 {a:.4g} -> {b:.4g} ms" if b is not None else f"{name}: every trial throttled")
    why = summary["reasons"][0] + (f" (+{len(summary['reasons']) - 1} more reasons)" if len(summary["reasons"]) > 1
                                   else "")
    return (f"throttling: {summary['throttled']} of {summary['trials']} trials throttled ({why}); "
            f"excluding them: {', '.join(parts)}")


def merge_external(path: str, trials: dict[str, list[dict]], log: Callable[[str], None]) -> dict:
    """Board energy of every trial window from an external meter's CSV (`external_power`); `log` gets the
    alignment's line."""
    from edgebranchy.measure.external import align, parse_meter_csv, window_readings

    trace = parse_meter_csv(path)
    ordered = sorted((r for recs in trials.values() for r in recs), key=lambda r: r["window"]["start_unix"])
    windows = [(r["window"]["start_unix"], r["window"]["end_unix"]) for r in ordered]
    alignment = align(trace, windows)
    log(alignment.line())
    for r, reading in zip(ordered, window_readings(trace, alignment, windows)):
        r["external_energy"] = reading.to_dict()
    return {"file": str(path), "source": trace.source, "alignment": alignment.to_dict(), "line": alignment.line(),
            "samples": int(trace.t.size), "interval_s": trace.interval_s}


def exit_energy(branchy_energy: dict | None, baseline_energy: dict | None, exit_counts: Sequence[int], *,
                batch_size: int, segment_latency_ms: Sequence[float], manifest: dict,
                idle_watts: float | None) -> dict | None:
    """Energy per exit from the branchy windows' power and the segment latencies (None without usable energy)."""
    from edgebranchy.measure.exit_energy import energy_per_exit

    if not branchy_energy or branchy_energy.get("per_inference_mj") is None:
        return None
    try:
        seg_macs = [float(s["macs"]) for s in manifest["segments"]]
        base_macs = float(manifest["baseline"]["macs"])
    except (KeyError, TypeError, ValueError):
        return None
    base = (baseline_energy or {}).get("per_inference_mj")
    return energy_per_exit(exit_counts, batch_size=batch_size, segment_macs=seg_macs, baseline_macs=base_macs,
                           baseline_mj=base["median"] if base else None,
                           branchy_mj=branchy_energy["per_inference_mj"]["median"],
                           segment_latency_ms=segment_latency_ms, branchy_watts=branchy_energy["watts"],
                           idle_watts=idle_watts if branchy_energy["kind"] == "measured" else None,
                           kind=branchy_energy["kind"], source=branchy_energy["source"])


def exit_drift(exit_counts: Sequence[int], manifest: dict, overridden: bool, alpha: float = 1e-3,
               min_effect: float = 0.03) -> dict | None:
    """The drift test of the first pass's exits against the calibration (None when there is nothing to test).

    One pass over distinct samples: later passes repeat the same samples and
    are not independent draws.
    """
    from edgebranchy.exits.drift import exit_rate_drift, expected_fractions

    if overridden:
        return None
    expected, n_cal, origin = expected_fractions(manifest)
    if expected is None or not n_cal or len(expected) != len(exit_counts):
        return None
    d = exit_rate_drift(exit_counts, expected, n_cal, alpha=alpha, min_effect=min_effect)
    return {**d.to_dict(), "expected_from": origin, "line": d.line()}
