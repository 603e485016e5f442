"""What `edgebranchy bench` prints on stdout: the results table of every run, or (--json) a summary."""
from __future__ import annotations

import json


def _energy_words(e: dict) -> str:
    from edgebranchy.measure.power.select import source_words

    if e["energy"]:
        return f"energy {e['energy']['kind']} ({source_words(e['energy']['source'])})"
    return "energy refused: " + (e.get("energy_refused") or {}).get("refused", [{"flag": "no reading"}])[0]["flag"]


def print_table(res: dict) -> None:
    """The table of each run (accuracy, p50, p99, energy), its gain and exits, conditions and forms."""
    runs = res["runs"]
    for run in runs:
        b, e = run["variants"]["baseline"], run["variants"]["branchy"]
        unit = b["latency_ms"]["per"]
        if len(runs) > 1:
            print(f"\n{run['id']}: {run['label']}")
        print(f"{'':10}{'accuracy':>9}{'p50 ms':>10}{'p99 ms':>10}{'mJ/inference':>14}")
        for name, v in (("baseline", b), ("branchy", e)):
            mj = f"{v['energy']['per_inference_mj']['median']:>14.4f}" if v["energy"] else f"{'refused':>14}"
            print(f"{name:10}{v['accuracy'] * 100:>8.2f}%{v['latency_ms']['p50']:>10.4f}"
                  f"{v['latency_ms']['p99']:>10.4f}" + mj)
        print(f"latency gain (p50 per {unit}): {b['latency_ms']['p50'] / e['latency_ms']['p50']:.2f}x; "
              f"exits {', '.join(f'{f * 100:.1f}%' for f in e['exit_fractions'])}; {_energy_words(e)}")
        exp = (run.get("gains") or {}).get("expected")
        if exp:  # measured against what calibration estimated, so the two are read side by side
            at = exp.get("at_run_exits") or exp
            print(f"calibration expected {at['speedup']:.2f}x from {exp['source']} at these exit rates "
                  f"({exp['speedup']:.2f}x at the calibrated ones); measured {run['gains']['mean']['gain']:.2f}x "
                  "(mean latency)")
        print(run["conditions"]["line"])
        forms = run["environment"].get("batch1_forms")
        if forms:
            print(f"batch-1 forms (measured here): segments {forms['segments_us']:.1f} us, single graph "
                  f"{forms['single_graph_us']:.1f} us per sample; branchy ran as {forms['choice']}")
    for line in res.get("skipped", []):
        print(line)


def summary(res: dict, path: str) -> dict:
    """A machine-readable summary of every run: what it measured, its figures and its gains."""
    out = []
    for run in res["runs"]:
        env, cfg = run["environment"], run["config"]
        row = {"id": run["id"], "label": run["label"], "batch_size": cfg["batch_size"], "backend": env["backend"],
               "precision": env["precision"], "form": env.get("batch1_form") if cfg["batch_size"] == 1 else
               "segments", "latency_per": run["variants"]["baseline"]["latency_ms"]["per"]}
        for name in ("baseline", "branchy"):
            v = run["variants"][name]
            lat = v["latency_ms"]
            row[name] = {"accuracy": v["accuracy"], "p50_ms": lat["p50"], "p99_ms": lat["p99"],
                         "mean_ms": lat["mean"], "mean_ci95_ms": lat["ci95"], "throughput_sps": v["throughput_sps"],
                         "energy_mj": v["energy"]["per_inference_mj"]["median"] if v["energy"] else None,
                         "energy_kind": v["energy"]["kind"] if v["energy"] else None}
        row["branchy"]["exit_fractions"] = run["variants"]["branchy"]["exit_fractions"]
        b, e = row["baseline"], row["branchy"]
        row["speedup_p50"] = b["p50_ms"] / e["p50_ms"]
        row["gains"] = run.get("gains")
        out.append(row)
    return {"results": str(path), "latencies": res.get("latencies"), "runs": out, "skipped": res.get("skipped", [])}


def print_json(res: dict, path: str) -> None:
    print(json.dumps(summary(res, path), indent=2, allow_nan=False))


def print_streams(doc: dict) -> None:
    """The table of a streams sweep: per N and variant the aggregate throughput, p50 and p99 over the streams,
    the worst stream's p99; branchy's gain and the scaling from N=1."""
    rate = doc["config"]["rate"]
    print("requests back to back" if rate is None else
          f"{rate:g} requests/s per stream at fixed times: latency includes queueing")
    print(f"{'N':>3}{'threads':>8}  {'variant':9}{'answers/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'worst p99':>10}"
          f"{'gain':>7}{'scaling':>9}")
    for p in doc["points"]:
        for name in ("baseline", "branchy"):
            v = p["variants"][name]
            worst = max(s["p99_ms"] for s in v["per_stream"])
            gain = f"{p['gain']:.2f}x" if name == "branchy" and p["gain"] else ""
            scale = f"{p['scaling'][name]:.2f}x" if p.get("scaling") else ""
            print(f"{p['streams']:>3}{p['threads_per_session']:>8}  {name:9}{v['throughput_sps']:>11.0f}"
                  f"{v['p50_ms']:>9.3f}{v['p99_ms']:>9.3f}{worst:>10.3f}{gain:>7}{scale:>9}")
