"""Concurrent camera streams: throughput of the baseline and branchy at N = 1, 2, 4, branchy's gain at each N and the
scaling from N=1 (`bench --streams`, batch 1, requests back to back), against the issue's targets: branchy at N=2
at least 1.8x its N=1 throughput on 2 cores, and the gain at N=2 no smaller than at N=1.

Usage: python benchmarks/streams_scaling.py ARTIFACT [ARTIFACT ...] [--streams 1,2,4] [--seconds 3] [--trials 3]
       [--clients processes|threads] [--spinning on|off] [--out-dir DIR]
Each artifact's streams document goes to DIR/streams_<model>.json (give them to `edgebranchy report`). Prints
Markdown. The 1-minute load average before and after is printed: other work on the cores changes every figure.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.bench.streams import StreamsConfig, run_streams
from edgebranchy.util.cpus import usable_cpus


def one(path: str, a) -> None:
    name = Artifact.load(path).manifest.get("model", {}).get("name", Path(path).name)
    out = Path(a.out_dir) / f"streams_{name}{'_spinning' if a.spinning == 'on' else ''}.json"
    doc = run_streams(StreamsConfig(artifact=path, out=str(out), streams=a.streams, seconds=a.seconds,
                                    trials=a.trials, clients=a.clients, force=True,
                                    backend_options={"allow_spinning": a.spinning == "on"}),
                      log=lambda s: print(f"<!-- {s} -->", flush=True))
    gains = {}
    for p in doc["points"]:
        b, y = p["variants"]["baseline"], p["variants"]["branchy"]
        gains[p["streams"]] = p["gain"]
        sc = p["scaling"] or {"baseline": float("nan"), "branchy": float("nan")}
        print(f"| {name} | {p['streams']} | {p['threads_per_session']} | {b['throughput_sps']:.0f} | "
              f"{y['throughput_sps']:.0f} | {p['gain']:.2f}x | {sc['baseline']:.2f}x | {sc['branchy']:.2f}x | "
              f"{b['p99_ms']:.3f} | {y['p99_ms']:.3f} |", flush=True)
    at = {p["streams"]: p for p in doc["points"]}
    if 1 in at and 2 in at:
        s2 = at[2]["scaling"]["branchy"]
        ratio, ci = at[2].get("gain_vs_first"), at[2].get("gain_vs_first_ci")
        verdict = ("met" if gains[2] >= gains[1] else
                   "smaller, within the trials' spread" if ci and ci[1] >= 1.0 else "NOT met")
        span = f", 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        print(f"| {name} targets | | | | | gain N=2 {gains[2]:.3f}x vs N=1 {gains[1]:.3f}x (ratio {ratio:.3f}{span}): "
              f"{verdict} | | branchy N=2 {s2:.2f}x (target 1.8x): "
              f"{'met' if s2 >= 1.8 else 'NOT met'} | | |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--streams", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--clients", choices=("processes", "threads"), default="processes")
    ap.add_argument("--spinning", choices=("on", "off"), default="off", help="ONNX Runtime thread spinning")
    ap.add_argument("--out-dir", default="benchmarks/results")
    a = ap.parse_args()
    print(f"<!-- command: python benchmarks/streams_scaling.py {' '.join(sys.argv[1:])} -->")
    print(f"# Concurrent streams at batch 1 ({time.strftime('%Y-%m-%d %H:%M')}, {usable_cpus().describe()}, "
          f"{a.clients} as clients, spinning {a.spinning}, back to back, {a.trials} trials x {a.seconds:g} s per variant and N; load "
          f"average at start {os.getloadavg()[0]:.2f})\n")
    print("| model | N | threads/session | baseline /s | branchy /s | gain | baseline scaling | branchy scaling | "
          "baseline p99 ms | branchy p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in a.artifacts:
        one(p, a)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
