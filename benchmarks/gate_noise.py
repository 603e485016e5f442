"""Where the noise of compare's gate comes from: the per-round spread of the latency gain, by bench design.

Usage: python benchmarks/gate_noise.py [--reps 6] [--budget 2.5] [--work DIR] [--out benchmarks/results/gate_noise]

compare gates on a gain (baseline / branchy, measured in the same run); its interval comes from the spread of
the per-round log gains log(baseline_t / branchy_t), so what decides whether a 20% slowdown is caught at a given
number of trials is that spread. This script benches one B-LeNet artifact (prepared as benchmarks/compare_gate.py
prepares it) with bench's own code under several designs of the same total measuring time per variant
(`--budget` seconds), interleaved (every repetition runs every design, in a rotated order, so a change of the
machine's load hits all of them):

    5 x W/5        5 trials of budget/5 s (today's default shape)
    5 x W/5 pin    the same, the process (and so ONNX Runtime's threads) pinned to one CPU, CPU 0 and 1 by turn
    10 x W/10, 20 x W/20, 40 x W/40   finer interleaving: more, shorter trials, the same time

and, from each run's raw per-call latencies (bench's side file), the per-round log gain of several per-trial
statistics (p50; mean; trimmed means dropping 10% / 25% at each end). Reports per design and statistic the
median within-run SD of the per-round log gain, and the detection power that SD gives a 20% slowdown at the
gate (Welch's t, 5% threshold, the design's trials on both sides, normal approximation). Writes OUT.md (the
command on the first line) and OUT.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_gate import ROOT, bench, prepare  # noqa: E402

from edgebranchy.artifact.replicates import t95  # noqa: E402

STATS = {"p50": np.median, "mean": np.mean,
         "trimmed 10%": lambda x: _trimmed(x, 0.10), "trimmed 25%": lambda x: _trimmed(x, 0.25)}


def _trimmed(x: np.ndarray, cut: float) -> float:
    x = np.sort(x)
    k = int(x.size * cut)
    return float(x[k:x.size - k].mean())


def designs(budget: float) -> list[tuple[str, int, float, int | None]]:
    """(name, trials, window, pinned CPU or None; None CPU set means unpinned)."""
    out = [("5 x %.2g s" % (budget / 5), 5, budget / 5, None), ("5 x %.2g s pinned" % (budget / 5), 5, budget / 5, -1)]
    out += [("%d x %.2g s" % (n, budget / n), n, budget / n, None) for n in (10, 20, 40)]
    return out


def per_trial_calls(path: Path) -> dict[str, list[np.ndarray]]:
    """Each variant's calls, split by trial, from a results file and its raw-latency side file."""
    doc = json.loads(path.read_text())
    run = doc["runs"][0]
    raw = np.load(str(path) + ".latencies.npz")
    out = {}
    for v in ("baseline", "branchy"):
        x, i, out[v] = raw[f"{run['id']}/{v}"], 0, []
        for c in run["variants"][v]["latency_ms"]["trials"]["calls"]:
            out[v].append(x[i:i + c])
            i += c
    return out


def round_logs(calls: dict[str, list[np.ndarray]]) -> dict[str, list[float]]:
    return {k: [math.log(f(b) / f(r)) for b, r in zip(calls["baseline"], calls["branchy"])] for k, f in STATS.items()}


def power(sd: float, n: int, shift: float = math.log(1.2), threshold: float = 0.05) -> float:
    """P(the gate fires) for a true log-gain drop `shift`, per-round SD `sd`, n trials a side (normal approx.)."""
    se = sd * math.sqrt(2.0 / n)
    half = t95(2 * n - 2) * se
    need = max(half, -math.log(1 - threshold))   # the upper end below 0 and the change beyond 5%
    return 0.5 * (1 + math.erf((shift - need) / (se * math.sqrt(2))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=6, help="runs of every design")
    ap.add_argument("--budget", type=float, default=2.5, help="measuring seconds per variant and run")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gate_noise")
    args = ap.parse_args()
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="gate-noise-"))
    work.mkdir(parents=True, exist_ok=True)
    art, dataset = prepare(work)
    ds = designs(args.budget)
    rows, loads, all_cpus = [], [], sorted(os.sched_getaffinity(0))
    for rep in range(args.reps):
        for j in range(len(ds)):
            name, trials, window, pin = ds[(rep + j) % len(ds)]
            cpu = all_cpus[rep % len(all_cpus)] if pin is not None else None
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            try:
                out = work / f"r{rep}-{trials}-{cpu}.json"
                b = bench(art, dataset, out, SimpleNamespace(samples=args.samples, trials=trials, min_window=window))
            finally:
                os.sched_setaffinity(0, set(all_cpus))
            loads += b["load"]
            rows.append({"design": name, "rep": rep, "cpu": cpu, "load": b["load"], "logs": round_logs(
                per_trial_calls(out))})
            print(f"rep {rep} {name}: load {b['load'][1]:.1f}", flush=True)
    args.out.with_suffix(".json").write_text(json.dumps({"dataset": dataset, "budget_s": args.budget, "rows": rows}))
    text = render(args, ds, rows, loads, dataset)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


def render(args, ds, rows, loads, dataset) -> str:
    cmd = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [cmd, "", "# The per-round spread of the latency gain, by bench design and per-trial statistic", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, shared: load average "
             f"{min(loads):.1f} to {max(loads):.1f} (median {float(np.median(loads)):.1f}). B-LeNet on {dataset}, ONNX "
             f"Runtime, batch 1, segments form, {args.samples} samples per pass, {args.budget:g} s of trials per "
             f"variant in every design, {args.reps} runs of each, the designs interleaved.", "",
             "Cell: median over the runs of the within-run SD of log(baseline_t / branchy_t) (trial t of both "
             "variants), then in brackets the power that SD gives compare's gate against a 20% slowdown at the "
             "design's trials.", "",
             "| design | " + " | ".join(STATS) + " |", "|---|" + "---|" * len(STATS)]
    for name, trials, _, _ in ds:
        mine = [r for r in rows if r["design"] == name]
        cells = []
        for k in STATS:
            sd = float(np.median([np.std(r["logs"][k], ddof=1) for r in mine]))
            cells.append(f"{sd:.3f} ({100 * power(sd, trials):.0f}%)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "Every run's per-round log gains are in the JSON file next to this one.", ""])


if __name__ == "__main__":
    sys.exit(main())
