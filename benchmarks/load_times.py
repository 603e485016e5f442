"""Training and quickstart time, quiet and with one of the machine's cores kept busy, before and after.

Usage:
  python benchmarks/load_times.py train [--samples 6000] [--repeats 1]
  python benchmarks/load_times.py quickstart --before /work/main [--repeats 1] [--epochs N]

"busy": a `while True: pass` process pinned to the last CPU of this process's affinity mask, started by this
script before the measured command and killed after it. Every command runs in a fresh subprocess, so that the
environment (OMP_NUM_THREADS, OMP_WAIT_POLICY) applies before torch loads.

train: one baseline and one joint B-LeNet epoch on `--samples` Fashion-MNIST samples (the trainer's own epoch
seconds, summed), for the settings below; "torch default" pins OMP_NUM_THREADS to the usable CPUs (what torch
uses by default; it also switches the trainer's choice off), "chosen" is the trainer's choice (train/threads.py).
quickstart: `edgebranchy quickstart` wall time with the code at `--before` (its own .venv) and this checkout.
The 1-minute load average before each command is printed with it: figures are only comparable on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ("import json, sys\nfrom edgebranchy.train.trainer import TrainConfig, Trainer\n"
         "cfg = TrainConfig(model='b-lenet', dataset='fashion-mnist', limit=int(sys.argv[1]), epochs=1, "
         "baseline_epochs=1)\nt = Trainer(cfg, sys.argv[2], progress=False)\nt.run()\n"
         "print(json.dumps({'seconds': sum(h['seconds'] for h in t.history), "
         "'threads': [h.get('cpu_threads') for h in t.history]}))\n")


def busy_loop() -> subprocess.Popen:
    cpu = max(os.sched_getaffinity(0))
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass\n"
    p = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.5)
    return p


def timed(cmd: list, env: dict, cwd: Path, busy: bool) -> tuple[float, str, float]:
    """(wall seconds, stdout, 1-minute load average before) of `cmd`, with a busy core or not."""
    load = os.getloadavg()[0]
    loop = busy_loop() if busy else None
    try:
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, check=True)
        return time.perf_counter() - t0, out.stdout, load
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()


def train(samples: int, repeats: int) -> None:
    from edgebranchy.util.cpus import usable_cpus

    cpus = usable_cpus().count
    settings = [("torch default threads, default wait", {"OMP_NUM_THREADS": str(cpus)}),
                ("torch default threads, OMP_WAIT_POLICY=PASSIVE", {"OMP_NUM_THREADS": str(cpus),
                                                                    "OMP_WAIT_POLICY": "PASSIVE"}),
                ("chosen threads, default wait", {}),
                ("chosen threads, OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"})]
    print(f"| setting | quiet: epoch s (load) | one core busy: epoch s (load) | busy / quiet | threads (busy) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in settings:
            got = {}
            for busy in (False, True):
                runs = []
                for _ in range(repeats):
                    env2 = {k: v for k, v in env.items()}
                    _, out, load = timed([sys.executable, "-c", TRAIN, str(samples), f"{tmp}/t.pt"], env2, ROOT, busy)
                    rec = json.loads(out.strip().splitlines()[-1])
                    runs.append((rec["seconds"], load, rec["threads"]))
                got[busy] = sorted(runs)[len(runs) // 2]
            q, b = got[False], got[True]
            threads = "/".join(str((t or {}).get("threads", "-")) for t in b[2])
            print(f"| {name} | {q[0]:.1f} ({q[1]:.1f}) | {b[0]:.1f} ({b[1]:.1f}) | {b[0] / q[0]:.2f}x | {threads} |",
                  flush=True)


def quickstart(before: Path, repeats: int, extra: list) -> None:
    print("| code | quiet: s (load) | one core busy: s (load) | busy / quiet |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, root in (("after", ROOT), ("before", before)):
            got = {}
            for busy in (False, True):
                runs = []
                for i in range(repeats):
                    out = f"{tmp}/{name}-{int(busy)}-{i}"
                    secs, _, load = timed([str(root / ".venv/bin/python"), "-m", "edgebranchy", "quickstart", "--out",
                                           out, *extra], {}, root, busy)
                    runs.append((secs, load))
                got[busy] = sorted(runs)[len(runs) // 2]
            q, b = got[False], got[True]
            print(f"| {name} ({root}) | {q[0]:.0f} ({q[1]:.1f}) | {b[0]:.0f} ({b[1]:.1f}) | {b[0] / q[0]:.2f}x |",
                  flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("train", "quickstart"))
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--before", type=Path, default=Path("/work/main"))
    ap.add_argument("--epochs", type=int, default=None, help="quickstart --epochs (default: quickstart's own)")
    a = ap.parse_args()
    print(f"<!-- command: python benchmarks/load_times.py {' '.join(sys.argv[1:])} -->")
    print(f"# {a.what} time quiet and with one core busy ({time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f})\n")
    if a.what == "train":
        train(a.samples, a.repeats)
    else:
        quickstart(a.before, a.repeats, ["--epochs", str(a.epochs)] if a.epochs else [])
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
