"""Report notes on whether a run's figures can be trusted: throttling, clocks, power provenance, meters, drift."""
from __future__ import annotations

from edgebranchy.report.runs import Run


def _provenance_text(p: dict) -> str:
    parts = [p.get("detail") or p.get("covers", "?"), p.get("method", "?")]
    if p.get("sensor_update_s"):
        parts.append(f"sensor updates every {p['sensor_update_s']:.3g} s")
    if p.get("sampling_interval_s"):
        parts.append(f"sampled every {p['sampling_interval_s']:.3g} s")
    return "; ".join(parts)


def trust_notes(run: Run) -> list[str]:
    """Notes for one run, each prefixed with its tag (R1, R2, ...); empty for results without these records."""
    tag, d = f"R{run.index}", run.data
    notes = []
    cond = d.get("conditions") or {}
    if cond.get("line"):
        notes.append(f"{tag}: {cond['line']}.")
    start = run.env.get("conditions_start") or {}
    if start.get("clocks_locked") is False:
        notes.append(f"{tag}: clocks were NOT locked (jetson_clocks not applied; bench --lock-clocks does it): "
                     "latency depends on the governor's clock choices.")
    for name in ("baseline", "branchy"):
        v = d["variants"][name]
        refused = v.get("energy_refused")
        if refused and refused.get("refused"):
            notes.append(f"{tag} {name}: no energy figure: {refused['refused'][0]['flag']}.")
        e = v.get("energy") or {}
        if name == "branchy" and e.get("provenance"):
            notes.append(f"{tag}: energy covers {_provenance_text(e['provenance'])}.")
        if e.get("refused"):
            notes.append(f"{tag} {name}: {len(e['refused'])} of {e['trials_total']} energy windows left out: "
                         f"{e['refused'][0]['flag']}.")
    ext = d.get("external_power")
    if ext:
        per = []
        for name in ("baseline", "branchy"):
            x = (d["variants"][name].get("external_energy") or {}).get("per_inference_mj")
            if x:
                per.append(f"{name} {x['median']:.4g} mJ/inference")
        notes.append(f"{tag}: measured board power from an external meter ({ext['source']}): {ext['line']}"
                     + (f"; {', '.join(per)}" if per else "") + ".")
    epe = d["variants"]["branchy"].get("energy_per_exit")
    if epe:
        per = ", ".join(f"{run.exit_label(k)} {v:.3g} mJ" for k, v in enumerate(epe["per_exit_mj"]))
        sv = [(n, epe.get(k)) for n, k in (("measured", "saving_measured"), ("from segments", "saving_from_segments"),
                                           ("MAC estimate", "saving_from_macs"))]
        notes.append(f"{tag}: energy per sample by exit ({epe['kind']}): {per}; saving vs baseline "
                     + ", ".join(f"{n} {v * 100:.1f}%" for n, v in sv if v is not None) + ".")
    drift = d.get("exit_drift")
    if drift and drift.get("drifted"):
        notes.append(f"{tag}: {drift['line']}.")
    return notes
