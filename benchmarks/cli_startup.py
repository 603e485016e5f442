"""How long `edgebranchy --help` and each subcommand's `--help` take to start, and what they import.

Usage: python benchmarks/cli_startup.py [--rounds 15] [--label before] [--out FILE.md]

Each round starts a fresh interpreter per command (`python -m edgebranchy [CMD] --help`), the
commands interleaved in a new random order every round, and takes the child's wall clock and its
CPU time (user + sys, getrusage of the finished child: far less sensitive to other
jobs on a shared machine than the wall clock). A bare `python -c pass` is timed in the same rounds,
so the figures say what edgebranchy adds to an interpreter's start. The heavy modules each command
loads (numpy, onnxruntime, torch, the backends) are read from `sys.modules` in one extra run.
Prints Markdown (medians over the rounds).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "onnxruntime", "torch", "matplotlib", "psutil", "tqdm",
         "edgebranchy.runtime.backends.onnxruntime", "edgebranchy.runtime.backends.torch",
         "edgebranchy.runtime.backends.tensorrt")
PROBE = """
import sys, io, contextlib
from edgebranchy.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main({args!r})
print(','.join(m for m in {heavy!r} if m in sys.modules))
"""


def commands() -> list[str]:
    """The subcommands, read from the CLI's own parser (one extra process, not timed)."""
    code = ("from edgebranchy.cli import build_parser\n"
            "p = build_parser()\n"
            "sub = [a for a in p._actions if a.__class__.__name__ == '_SubParsersAction'][0]\n"
            "print(' '.join(sub.choices))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return out.stdout.split()


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, child CPU s) of one run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(args: list[str]) -> str:
    code = PROBE.format(args=args, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return f"(failed: {out.stderr.strip()[-200:]})"
    return (out.stdout.splitlines() or [""])[-1].strip()   # "" when none of HEAVY is loaded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, help="also write the Markdown here")
    a = ap.parse_args()
    cases = {"(python -c pass)": [sys.executable, "-c", "pass"],
             "edgebranchy --help": [sys.executable, "-m", "edgebranchy", "--help"]}
    for c in commands():
        cases[f"edgebranchy {c} --help"] = [sys.executable, "-m", "edgebranchy", c, "--help"]
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    rng = random.Random(0)
    for _ in range(a.rounds):
        order = list(cases)
        rng.shuffle(order)
        for k in order:
            w, c = timed(cases[k])
            walls[k].append(w)
            cpus[k].append(c)
    base_w, base_c = statistics.median(walls["(python -c pass)"]), statistics.median(cpus["(python -c pass)"])
    lines = [f"<!-- python benchmarks/cli_startup.py --rounds {a.rounds}"
             + (f" --label {a.label}" if a.label else "") + " -->",
             f"# CLI start-up{': ' + a.label if a.label else ''}",
             "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"load average {os.getloadavg()[0]:.2f} at the end; medians of {a.rounds} interleaved rounds.",
             "",
             "| command | wall ms | CPU ms | CPU ms beyond a bare interpreter | heavy modules loaded |",
             "|---|---|---|---|---|"]
    for k in cases:
        w, c = statistics.median(walls[k]), statistics.median(cpus[k])
        heavy = "" if k.startswith("(") else (heavy_imports(cases[k][3:]) or "none")
        extra = "" if k.startswith("(") else f"{(c - base_c) * 1e3:.0f}"
        lines.append(f"| `{k}` | {w * 1e3:.0f} | {c * 1e3:.0f} | {extra} | {heavy} |")
    lines.append("")
    lines.append(f"A bare interpreter: {base_w * 1e3:.0f} ms wall, {base_c * 1e3:.0f} ms CPU.")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
