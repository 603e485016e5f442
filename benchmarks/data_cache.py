"""How long loading a data set takes without and with the decoded-data cache (edgebranchy/data/cache.py).

Usage: python benchmarks/data_cache.py [--dataset fashion-mnist] [--data-dir DIR] [--rounds 3]

Each round runs `load_dataset` in a fresh Python process (what every command pays): once with
EDGEBRANCHY_CACHE=off (decode every time, the old behaviour), once with an empty cache folder (decode
and write the entry) and once more with that folder (read the entry). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("import time; t = time.perf_counter(); from edgebranchy.data import load_dataset; "
        "load_dataset({name!r}, {ddir!r}); print(time.perf_counter() - t)")


def _once(name: str, ddir, cache: str) -> float:
    env = {**os.environ, "EDGEBRANCHY_CACHE": cache, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CODE.format(name=name, ddir=ddir)], check=True, env=env,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    rows = {"no cache (EDGEBRANCHY_CACHE=off)": [], "first load (decode + write the entry)": [],
            "later loads (read the entry)": []}
    for _ in range(a.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rows["no cache (EDGEBRANCHY_CACHE=off)"].append(_once(a.dataset, a.data_dir, "off"))
            rows["first load (decode + write the entry)"].append(_once(a.dataset, a.data_dir, tmp))
            rows["later loads (read the entry)"].append(_once(a.dataset, a.data_dir, tmp))
    print(f"`load_dataset({a.dataset!r})` in a fresh process, {a.rounds} rounds, seconds (median, min-max)\n")
    print("| case | median s | range s |\n|---|---|---|")
    for case, ts in rows.items():
        print(f"| {case} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |")


if __name__ == "__main__":
    main()
