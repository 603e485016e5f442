"""Time of the exact threshold search for 10,000 validation samples with 2 and 3 exits.

Usage: python benchmarks/calibration_speed.py [--n 10000]
Logits are synthetic (later exits more accurate, realistic entropy spread); the
search time depends on N and the number of distinct entropy values, not on the network.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from edgebranchy.exits.calibrate import calibrate
from edgebranchy.exits.pruning import calibrate_pruned


def problem(n: int, k: int, c: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = []
    for j in range(k):
        lg = rng.normal(size=(n, c)) * 2
        lg[np.arange(n), labels] += rng.gamma(2.0, 1.5 + j, n)
        logits.append(lg)
    return logits, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10000)
    a = ap.parse_args()
    print(f"# Threshold search time, N = {a.n} validation samples\n")
    print("| exits | search | mode | seconds | thresholds |\n|---|---|---|---|---|")
    for k, seg, heads in ((2, [0.2, 0.8], [0.1, 0.05]), (3, [0.3, 0.3, 0.5], [0.2, 0.1, 0.01])):
        logits, labels = problem(a.n, k)
        for mode in ({"max_accuracy_drop": 0.5}, {"budget": 0.5}):
            for name, fn in (("exact", lambda **m: calibrate(logits, labels, seg, 1.0, **m)),
                             ("exact per subset of exits", lambda **m: calibrate_pruned(logits, labels, seg, heads,
                                                                                         1.0, **m))):
                t0 = time.perf_counter()
                res = fn(**mode)
                dt = time.perf_counter() - t0
                print(f"| {k} | {name} | {next(iter(mode))} {next(iter(mode.values()))} | {dt:.2f} | "
                      f"{', '.join(f'{t:.4g}' for t in res.thresholds)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
