"""The runner's own cost per batch-1 sample, with the backend's calls taken out.

Usage: python benchmarks/runner_overhead.py ARTIFACT [--data-dir DIR] [--samples 1000] [--rounds 9]

Each sample's backend answers (every `step_one` of the segments path, the `run_single` of the single
graph) are first computed with ONNX Runtime and recorded. The backend's methods are then replaced by
replays of those recordings, so `EarlyExitRunner.predict` runs its real code (input check, exit rule,
bookkeeping, `Prediction`) around calls that cost only a list lookup. The same replays are timed alone
("bare": the calls the runner makes, nothing else), and the difference is the runner's overhead per
sample, independent of how fast the graphs are and far less sensitive to other jobs on the machine
than subtracting two ONNX Runtime timings. The answers of the replayed runner are checked to be the
real runner's. Prints Markdown; thread CPU time and wall clock, median of interleaved rounds.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
from call_profile import timed  # the same interleaved two-clock timing (this folder is on sys.path)


class Replay:
    """Recorded backend answers handed back in order, one list lookup per call."""

    def __init__(self, calls: list):
        self.calls = calls
        self.i = 0

    def rewind(self) -> None:
        self.i = 0

    def next(self, *_args):
        out = self.calls[self.i]
        self.i += 1
        return out


def record(runner, one, singles: list) -> tuple[list, list, list]:
    """Per sample: the step_one answers the segments path uses, the run_single answer, and the exit."""
    b = runner.backend
    steps, single, exits = [], [], []
    for x in singles:
        p = runner.predict(x)
        k_exit = int(p.exits[0])
        h = b.to_device(x)
        for k in range(k_exit + 1):
            h2, lg, ent = b.step_one(k, h)
            # copies: at batch 1 the backend answers in buffers the next call reuses (ort_bound)
            steps.append(tuple(None if a is None else np.array(a) for a in (h2, lg, ent)))
            h = h2
        single.append(one.backend.run_single(x))
        exits.append(k_exit)
    return steps, single, exits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()

    from edgebranchy.data import load_dataset
    from edgebranchy.runtime.runner import EarlyExitRunner

    seg = EarlyExitRunner(a.artifact, form="segments")
    one = EarlyExitRunner(a.artifact, form="single-graph")
    data = load_dataset(a.dataset, a.data_dir)
    x = seg.artifact.preprocess(data.test.x[:a.samples])
    singles = [np.ascontiguousarray(x[i:i + 1]) for i in range(len(x))]
    steps, single, exits = record(seg, one, singles)
    want = [seg.predict(s) for s in singles]

    seg_replay, one_replay = Replay(steps), Replay(single)
    seg.backend.step_one = seg_replay.next  # the runner's real code around replayed calls
    one.backend.run_single = one_replay.next
    calls_per_sample = [e + 1 for e in exits]
    for i, s in enumerate(singles):  # the replayed runners answer as the real ones did
        for r, rep in ((seg, seg_replay), (one, one_replay)):
            got = r.predict(s)
            assert int(got.exits[0]) == int(want[i].exits[0]) and int(got.labels[0]) == int(want[i].labels[0]), i
    seg_replay.rewind(), one_replay.rewind()

    idx = list(range(len(singles)))

    def runner_seg(i):
        if i == 0:
            seg_replay.rewind()
        seg.predict(singles[i])

    def bare_seg(i):
        if i == 0:
            seg_replay.rewind()
        nxt = seg_replay.next
        for _ in range(calls_per_sample[i]):
            nxt(0, None)

    def runner_one(i):
        if i == 0:
            one_replay.rewind()
        one.predict(singles[i])

    def bare_one(i):
        if i == 0:
            one_replay.rewind()
        one_replay.next(singles[i])

    art = seg.artifact
    t = timed({"segments: runner.predict": runner_seg, "segments: the replayed calls alone": bare_seg,
               "single graph: runner.predict": runner_one, "single graph: the replayed call alone": bare_one,
               "Artifact.check_input": lambda i: art.check_input(singles[i])}, idx, a.rounds)
    frac = np.bincount(exits, minlength=seg.num_exits) / len(exits)
    print(f"<!-- command: python benchmarks/runner_overhead.py {' '.join(sys.argv[1:])} -->")
    print(f"# Runner overhead per batch-1 sample ({time.strftime('%Y-%m-%d %H:%M')} UTC, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())})\n")
    print(f"artifact {a.artifact} ({art.manifest['model'].get('name')}), {len(singles)} test samples, exits "
          f"{', '.join(f'{f * 100:.1f}%' for f in frac)} ({np.mean(calls_per_sample):.3f} segment calls per "
          f"sample), {a.rounds} interleaved rounds, µs per sample (median of rounds). The backend's calls are "
          "replays of recorded ONNX Runtime answers (a list lookup), checked to give the real runner's exits "
          "and labels.\n")
    print("| | µs, thread CPU time | µs, wall |\n|---|---|---|")
    for k, (c, w) in t.items():
        print(f"| {k} | {c:.2f} | {w:.2f} |")
    for form, r, bare in (("segments", "segments: runner.predict", "segments: the replayed calls alone"),
                          ("single graph", "single graph: runner.predict", "single graph: the replayed call alone")):
        print(f"\n**{form}: runner overhead {t[r][0] - t[bare][0]:.2f} µs per sample** (thread CPU time; wall "
              f"{t[r][1] - t[bare][1]:.2f}; target <= 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
