"""How often `edgebranchy compare --max-regression 5%` cries wolf, and how often it catches a real slowdown.

Usage: python benchmarks/compare_gate.py [--pairs 60] [--trials N] [--min-window 0.1] [--slowdown 0.2]
                                         [--work DIR] [--out benchmarks/results/compare_gate]

Trains a small B-LeNet (Fashion-MNIST when $EDGEBRANCHY_DATA has it, else the 28x28 synthetic set: the same
network and input size), calibrates it (0.5-point drop) and exports it, all with the edgebranchy CLI. Then
`--pairs` blocks of three benches of that artifact (bench's own code, `bench.session.run_bench`, at batch 1
on ONNX Runtime, the segments form, `--trials` trials: bench's default unless given):

    A, A', B     A/A pair (A, A'): the same artifact twice, minutes apart, with the machine's real noise
                 A/B pair (A', B): B adds a fixed busy wait to every branchy call (before segment 0), sized
                 `--slowdown` x the branchy trimmed mean of a pilot bench (not its p50, which jumps between the
                 modes of the early-exit latency): branchy about 20% slower against an unchanged baseline, its
                 gain about 1/1.2 of A's

and runs compare's gate (`report.compare.compare_files`, what `edgebranchy compare` prints and exits on) on
each pair. The pairs of one kind share no bench, so each rate comes with a Clopper-Pearson 95% interval. The
A/A pairs also check the intervals' honesty: each gated change over its standard error (the half-width of its
interval / 1.96) is a z-score whose SD should be about 1 (much above: the intervals are too narrow).
The first block's pairs are also compared with the `edgebranchy compare` CLI, whose exit status must agree.
Writes OUT.md (the command on the first line, the rates, the load average around every bench) and OUT.json
(every pair). The machine is shared: its load is part of the noise measured, and recorded.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> str:
    """Run `python -m edgebranchy ARGS`; its stdout (a failure stops the script with its stderr)."""
    r = subprocess.run([sys.executable, "-m", "edgebranchy", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"edgebranchy {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def prepare(work: Path) -> tuple[Path, str]:
    """Train, calibrate and export B-LeNet; the artifact and the dataset it was trained on."""
    data = os.environ.get("EDGEBRANCHY_DATA")
    dataset = "fashion-mnist" if data and (Path(data) / "fashion-mnist").is_dir() else "synthetic"
    ck, art = work / "lenet.pt", work / "artifact"
    if not (art / "manifest.json").is_file():
        epochs = ["--epochs", "1", "--samples", "12000"] if dataset == "fashion-mnist" else ["--epochs", "2"]
        cli("train", "--model", "b-lenet", "--dataset", dataset, *epochs, "--out", str(ck))
        cli("calibrate", str(ck), "--in-place", "--max-accuracy-drop", "0.5")
        cli("export", str(ck), "--out", str(art), "--no-single-graph")
    return art, dataset


@contextmanager
def slowed(delay_ns: int):
    """Every branchy call at batch 1 (the segments path: `step_one` of segment 0) first busy-waits `delay_ns`;
    the baseline's calls are untouched."""
    from edgebranchy.runtime.backends import onnxruntime as ort_backend

    cls = ort_backend.OnnxRuntimeBackend
    original = cls.step_one

    def step_one(self, k, x):
        if k == 0:
            end = time.perf_counter_ns() + delay_ns
            while time.perf_counter_ns() < end:
                pass
        return original(self, k, x)

    cls.step_one = step_one
    try:
        yield
    finally:
        cls.step_one = original


def bench(art: Path, dataset: str, out: Path, args) -> dict:
    """One bench of the artifact (bench's own code), with the load average before and after."""
    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.session import run_bench

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = run_bench(BenchConfig(artifact=str(art), out=str(out), backend="onnxruntime", profile="x86-cpu",
                                power="estimate", dataset=dataset, batch_size=1, form="segments",
                                samples=args.samples, trials=args.trials, min_window_s=args.min_window,
                                idle_s=0.2, segment_repeats=20, force=True),
                    log=lambda s: None, progress=False, warn=lambda s: None)
    run = res["runs"][0]
    return {"file": out.name, "load": [load0, os.getloadavg()[0]], "seconds": time.perf_counter() - t0,
            "p50_ms": {v: run["variants"][v]["latency_ms"]["p50"] for v in ("baseline", "branchy")},
            "trimmed_ms": {v: run["variants"][v]["latency_ms"]["trimmed"] for v in ("baseline", "branchy")},
            "gain_p50": run["gains"]["p50"]["gain"], "gain_mean": run["gains"]["mean"]["gain"]}


def gate(base: Path, new: Path) -> dict:
    """compare's verdict on one pair, and what it rests on."""
    from edgebranchy.report.comparison import compare_files

    s = compare_files(base, new, max_regression=0.05)
    m = s["matched"][0]
    metrics = {e["metric"]: {"change": e["change"], "ci95": e["ci95"], "regressed": e["regressed"],
                             "gated": e["gated"]}
               for e in m["metrics"] if e["gated"] or e["metric"].startswith("gain ")}
    return {"regressed": s["regressed"], "trials": m["trials"], "metrics": metrics}


def z_scores(pairs: list[dict]) -> dict[str, list[float]]:
    """Per gain (gated or shown), log(1 + change) / (half-width of its log interval / 1.96) of every pair that
    has one."""
    out: dict[str, list[float]] = {}
    for p in pairs:
        for name, e in p["metrics"].items():
            if e["ci95"] and name.startswith("gain") and e["change"] is not None:
                half = (math.log1p(e["ci95"][1]) - math.log1p(e["ci95"][0])) / 2
                if half > 0:
                    out.setdefault(name, []).append(math.log1p(e["change"]) / (half / 1.96))
    return out


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials (bisection on the binomial tail)."""
    def tail_ge(p: float) -> float:   # P(X >= k)
        return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))

    def solve(f, target: float) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
        return (lo + hi) / 2

    a = (1 - level) / 2
    low = 0.0 if k == 0 else solve(tail_ge, a)
    at_most_k = lambda p: 1 - tail_ge(p) + math.comb(n, k) * p ** k * (1 - p) ** (n - k)  # noqa: E731
    high = 1.0 if k == n else solve(lambda p: 1 - at_most_k(p), 1 - a)   # P(X <= k) = a / 2
    return low, high


def cli_agrees(base: Path, new: Path, regressed: bool) -> bool:
    r = subprocess.run([sys.executable, "-m", "edgebranchy", "compare", str(base), str(new), "--max-regression", "5%"],
                       capture_output=True, text=True)
    return r.returncode == (1 if regressed else 0)


def rate_line(name: str, pairs: list[dict], target: str) -> str:
    k, n = sum(p["regressed"] for p in pairs), len(pairs)
    lo, hi = clopper_pearson(k, n)
    return f"| {name} | {k} / {n} = {100 * k / n:.1f}% | [{100 * lo:.1f}%, {100 * hi:.1f}%] | {target} |"


def report(args, dataset: str, delay_ns: int, pilot: dict, blocks: list[dict], agree: list[bool], minutes: float) -> str:
    import numpy as np

    aa = [b["aa"] for b in blocks]
    ab = [b["ab"] for b in blocks]
    loads = [x for b in blocks for bench_ in b["benches"] for x in bench_["load"]]
    realised = [b["benches"][2]["trimmed_ms"]["branchy"] / b["benches"][1]["trimmed_ms"]["branchy"] - 1
                for b in blocks]
    gain_change = [p["metrics"]["gain trimmed"]["change"] for p in ab
                   if p["metrics"]["gain trimmed"]["change"] is not None]
    zs = z_scores(aa)
    cmd = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    return "\n".join([
        cmd, "",
        "# compare's gate, measured: false alarms on A/A pairs, detection of a 20% slowdown on A/B pairs", "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node() or 'this machine'} "
        f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), shared with other jobs while it "
        f"ran: load average {min(loads):.1f} to {max(loads):.1f} (median {np.median(loads):.1f}) around the benches. "
        f"{minutes:.0f} minutes for {3 * len(blocks)} benches.", "",
        f"B-LeNet on {dataset} (28x28), calibrated for a 0.5-point drop, ONNX Runtime, batch 1, segments form, "
        f"{args.samples} samples per pass, {args.trials} trials per variant (bench's default is "
        f"{default_trials()}), {args.min_window} s windows (bench's default is {default_window()} s"
        + (f": shorter here to fit {len(blocks)} blocks in the time; benchmarks/results/gate_noise.md found the "
           "per-round spread the same at every window length" if args.min_window < default_window() else "")
        + "). Gate: `compare --max-regression 5%` (a gated gain down by more than "
        "5% with its 95% interval, Welch's t over the two runs' trials, excluding no change; the gain of the "
        "trimmed mean is gated, the p50 and mean gains are shown, not gated; energy is estimated here and "
        "not gated).", "",
        "| pairs | gate fired | Clopper-Pearson 95% | target |", "|---|---|---|---|",
        rate_line("A/A (same artifact, benched twice)", aa, "at most 5%"),
        rate_line(f"A/B (branchy +{100 * args.slowdown:.0f}%: +{delay_ns / 1e3:.2f} us per branchy call)", ab,
                  "at least 95%"), "",
        f"Pilot bench: branchy trimmed mean {pilot['trimmed_ms']['branchy'] * 1e3:.2f} us (p50 "
        f"{pilot['p50_ms']['branchy'] * 1e3:.2f} us), baseline {pilot['trimmed_ms']['baseline'] * 1e3:.2f} us "
        f"(p50 {pilot['p50_ms']['baseline'] * 1e3:.2f} us); the busy wait is {args.slowdown:g} x the branchy "
        "trimmed mean. Realised on the A/B pairs: branchy trimmed mean "
        f"{100 * float(np.median(realised)):+.1f}% (median; {100 * min(realised):+.1f}% to "
        f"{100 * max(realised):+.1f}%), trimmed-mean gain change {100 * float(np.median(gain_change)):+.1f}% "
        "(median).",
        "Honesty of the intervals on the A/A pairs (SD of change / standard error; about 1 when honest; gated "
        "and shown gains): " +
        ", ".join(f"{k} {float(np.std(v, ddof=1)):.2f} over {len(v)} pairs" for k, v in zs.items()) + ".",
        f"A/A gains p50 across all A benches: {min(b['gain_p50'] for blk in blocks for b in blk['benches'][:2]):.2f}x "
        f"to {max(b['gain_p50'] for blk in blocks for b in blk['benches'][:2]):.2f}x.",
        _by_noise(ab),
        f"The `edgebranchy compare` CLI's exit status agreed with the library's verdict on "
        f"{sum(agree)} of {len(agree)} pairs checked.", "",
        "Every pair (gate fired, each gated gain's change [95% CI], trials) and every bench (load, p50s, trimmed "
        "means) is in the JSON file next to this one.", ""])


def _by_noise(ab: list[dict]) -> str:
    """Detection split by how much the pair's trials disagreed (the half-width of its trimmed-mean gain's
    interval)."""
    ci = lambda p: p["metrics"]["gain trimmed"]["ci95"]  # noqa: E731
    quiet = [p for p in ab if ci(p) and (ci(p)[1] - ci(p)[0]) / 2 < 0.10]
    loud = [p for p in ab if p not in quiet]
    part = lambda ps: f"{sum(p['regressed'] for p in ps)} of {len(ps)}"  # noqa: E731
    return (f"A/B pairs whose trials agreed (trimmed-mean gain interval narrower than +-10%): "
            f"{part(quiet)} caught; the others (a loaded machine shifted whole trials): {part(loud)} caught.")


def default_trials() -> int:
    from edgebranchy.bench.config import BenchConfig

    return BenchConfig(artifact="", out="").trials


def default_window() -> float:
    """bench's trial window when `--min-window` is not given and the power source needs no longer one."""
    from edgebranchy.bench.config import WINDOW_S

    return WINDOW_S


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=60, help="blocks of (A, A', B): A/A and A/B pairs each")
    ap.add_argument("--trials", type=int, default=None, help="trials per bench (default: bench's default)")
    ap.add_argument("--min-window", type=float, default=0.1, help="seconds per trial window")
    ap.add_argument("--samples", type=int, default=500, help="samples per pass")
    ap.add_argument("--slowdown", type=float, default=0.2, help="B's added branchy cost, x the pilot's branchy p50")
    ap.add_argument("--work", type=Path, default=None, help="folder for the model and the benches (default: temp)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compare_gate")
    args = ap.parse_args()
    args.trials = args.trials or default_trials()
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="compare-gate-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    art, dataset = prepare(work)
    pilot = bench(art, dataset, work / "pilot.json", args)
    delay_ns = int(round(args.slowdown * pilot["trimmed_ms"]["branchy"] * 1e6))
    blocks, agree = [], []
    for i in range(args.pairs):
        names = [work / f"b{i:03d}-{k}.json" for k in ("A", "A2", "B")]
        benches = [bench(art, dataset, names[0], args), bench(art, dataset, names[1], args)]
        with slowed(delay_ns):
            benches.append(bench(art, dataset, names[2], args))
        block = {"benches": benches, "aa": gate(names[0], names[1]), "ab": gate(names[1], names[2])}
        if i == 0:
            agree += [cli_agrees(names[0], names[1], block["aa"]["regressed"]),
                      cli_agrees(names[1], names[2], block["ab"]["regressed"])]
        blocks.append(block)
        print(f"block {i + 1}/{args.pairs}: A/A {'FIRED' if block['aa']['regressed'] else 'quiet'}, A/B "
              f"{'caught' if block['ab']['regressed'] else 'MISSED'}, load {os.getloadavg()[0]:.1f}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(
            {"dataset": dataset, "trials": args.trials, "min_window_s": args.min_window, "delay_ns": delay_ns,
             "pilot": pilot, "blocks": blocks}, indent=1))
    text = report(args, dataset, delay_ns, pilot, blocks, agree, (time.time() - t0) / 60)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
