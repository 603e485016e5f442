"""`edgebranchy predict`: a quick check that an artifact works on this device."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import add_backend_flags, backend_flag_options, floats

ORDER = 40


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict", help="run an artifact on a dataset's test split: accuracy and exit histogram",
        description="Run the early-exit artifact (and its baseline) on the test split of a dataset and print the "
                    "accuracy and where the samples left. Needs no torch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("artifact", help="artifact directory from `edgebranchy export`")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime, torch or tensorrt")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samples", type=int, help="only the first N test samples")
    p.add_argument("--thresholds", type=floats, help="override the artifact's thresholds, comma separated")
    p.add_argument("--pipelined", action="store_true", help="overlap segments of consecutive batches")
    add_backend_flags(p)
    return p


def run(args) -> int:
    import time

    import numpy as np

    from edgebranchy.data import load_dataset
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.runtime.runner import EarlyExitRunner

    if args.batch_size <= 0:
        raise EdgeBranchyError("--batch-size must be positive")
    if args.samples is not None and args.samples <= 0:
        raise EdgeBranchyError("--samples must be positive")
    ts = args.thresholds
    opts = backend_flag_options(args, args.backend)
    with EarlyExitRunner(args.artifact, backend=args.backend, thresholds=ts, options=opts) as r:
        data = load_dataset(args.dataset, args.data_dir)
        n = min(args.samples or len(data.test), len(data.test))  # None: the whole test split
        x = r.artifact.preprocess(data.test.x[:n])
        y = data.test.y[:n]
        batches = [x[i:i + args.batch_size] for i in range(0, n, args.batch_size)]
        t0 = time.perf_counter()
        preds = list(r.predict_stream(batches, pipelined=args.pipelined))
        t_branchy = time.perf_counter() - t0
        labels = np.concatenate([p.labels for p in preds])
        exits = np.concatenate([p.exits for p in preds])
        t0 = time.perf_counter()
        base = np.concatenate([r.baseline(b) for b in batches])
        t_base = time.perf_counter() - t0
        counts = np.bincount(exits, minlength=r.num_exits)
        print(f"{n} test samples of {args.dataset}, batch {args.batch_size}, backend {args.backend}, "
              f"thresholds {', '.join(f'{t:g}' for t in r.thresholds)}")
        print(f"branchy  accuracy {np.mean(labels == y) * 100:6.2f}%  {t_branchy:.2f} s")
        print(f"baseline accuracy {np.mean(base == y) * 100:6.2f}%  {t_base:.2f} s  (wall time here, not a benchmark:"
              " use `edgebranchy bench`)")
        for k, c in enumerate(counts):
            acc = np.mean(labels[exits == k] == y[exits == k]) * 100 if c else float("nan")
            print(f"exit {k}: {c:6d} samples ({c / n * 100:5.1f}%), accuracy {acc:6.2f}%")
    return 0
