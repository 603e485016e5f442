"""`edgebranchy predict`: a quick check that an artifact works on this device, or answers for image files."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import (add_backend_flags, add_drift_flags, backend_flag_options, batch_size, precisions,
                                   samples, thresholds)
from edgebranchy.vocab import BACKEND_NAMES, PRECISIONS, STREAM_MODES

ORDER = 40


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict", help="run an artifact on a dataset's test split (accuracy, exit histogram) or on image files",
        description="Run the early-exit artifact (and its baseline) on the test split of a dataset and print the "
                    "accuracy and where the samples left; with --images, answer for image files instead (label, "
                    "exit and entropy per image, prepared as the artifact records: needs Pillow). Needs no torch.")
    p.add_argument("artifact", help="artifact directory from `edgebranchy export`")
    p.add_argument("--dataset",
                   help="dataset whose test split is run (default: the one the artifact was trained on): "
                        "fashion-mnist, mnist, cifar10, digits, synthetic or imagefolder")
    p.add_argument("--data-dir", help="directory with the dataset files (default: where the artifact's data set was, "
                                      "$EDGEBRANCHY_DATA/NAME, else the system's copy); for an image folder artifact "
                                      "another folder of DIR/<class>/ images is read whole as test data")
    p.add_argument("--backend", default="onnxruntime", help=f"the backend that runs it: {', '.join(BACKEND_NAMES)}")
    p.add_argument("--batch-size", type=batch_size, default=64, help="samples per runner call")
    p.add_argument("--samples", type=samples, metavar="N", help="only the first N test samples (default: the whole test split)")
    p.add_argument("--thresholds", type=thresholds, help="override the artifact's thresholds, comma separated")
    p.add_argument("--stream-mode", choices=STREAM_MODES, default="auto",
                   help="how the batches run: sequential (one after another), pipelined (segments of consecutive "
                        "batches overlap), concurrent (independent batches on the usable CPUs), or auto (default: "
                        "each mode timed on the first batches here, the fastest runs the rest; the same answers)")
    p.add_argument("--pipelined", action="store_true", help="the same as --stream-mode pipelined")
    p.add_argument("--precision", type=precisions, metavar="P[,P..]",
                   help=f"which graphs to run ({', '.join(PRECISIONS)}, or auto: int8 where the artifact records it "
                        "faster); a comma list answers with each and prints them side by side (default: the "
                        "backend's own)")
    add_drift_flags(p)
    p.add_argument("--images", nargs="+", metavar="DIR_OR_FILE",
                   help="image files, or folders of them (searched recursively): one answer per image")
    p.add_argument("--out", help="with --images: write the answers to this .csv or .json file")
    p.add_argument("--strict-images", action="store_true",
                   help="with --images: refuse a damaged or non-image file (default: name it and skip it)")
    add_backend_flags(p)
    return p


def run(args) -> int:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.artifact, "artifact", "predict")  # the data set's loader says "loading ..."
    if args.batch_size <= 0:
        raise EdgeBranchyError("--batch-size must be positive")
    if args.samples is not None and args.samples <= 0:
        raise EdgeBranchyError("--samples must be positive")
    if (args.out or args.strict_images) and not args.images:
        raise EdgeBranchyError("--out and --strict-images go with --images")
    if args.pipelined and args.stream_mode not in ("auto", "pipelined"):
        raise EdgeBranchyError(f"--pipelined and --stream-mode {args.stream_mode} disagree: give one")
    opts = backend_flag_options(args, args.backend)
    precs = args.precision or [None]
    if args.images:
        return _predict_images(args, _with_precision(opts, precs[0]))
    done = [_predict_test(args, _with_precision(opts, p)) for p in precs]
    if len(done) > 1:
        ref = done[0]
        print("side by side (the first precision is the reference):")
        for d in done:
            print(f"  {d['precision']:>5}: branchy accuracy {d['accuracy'] * 100:6.2f}% "
                  f"({(d['accuracy'] - ref['accuracy']) * 100:+.2f} points), exits "
                  + ", ".join(f"{f * 100:.1f}%" for f in d["exit_rates"])
                  + f", branchy {d['seconds'] / ref['seconds']:.2f}x the {ref['precision']} time"
                  + f", gain over its own baseline {d['baseline_seconds'] / d['seconds']:.2f}x (wall time here)")
    return 0


def _answer(runner, args, batches: list) -> tuple[list, str | None]:
    """Every batch's prediction, in the mode asked; auto (the default) chooses on the stream's own batches as it
    answers them (runtime/stream_choice.answer_while_measuring: nothing runs twice) and says what it measured,
    printed after the figures (a plausibility warning stays the first line)."""
    mode = "pipelined" if args.pipelined else args.stream_mode
    if mode != "auto":
        return list(runner.predict_stream(batches, mode=mode)), None
    from edgebranchy.runtime.stream_choice import answer_while_measuring

    preds, rec = answer_while_measuring(runner, batches)
    return preds, f"stream: {rec['choice']} ({rec['reason']})"


def _with_precision(opts: dict | None, precision: str | None) -> dict | None:
    return opts if precision is None else {**(opts or {}), "precision": precision}


def _predict_test(args, opts: dict | None) -> dict:
    """Answer the test split with one precision's graphs; print the figures, return them."""
    import time

    import numpy as np

    from edgebranchy.data.splits import artifact_test_data
    from edgebranchy.runtime.runner import EarlyExitRunner

    ts = args.thresholds
    with EarlyExitRunner(args.artifact, backend=args.backend, thresholds=ts, options=opts) as r:
        name, data = artifact_test_data(r.artifact, args.dataset, args.data_dir)
        n = min(args.samples or len(data.test), len(data.test))  # None: the whole test split
        x = r.artifact.preprocess(data.test.x[:n])
        y = data.test.y[:n]
        batches = [x[i:i + args.batch_size] for i in range(0, n, args.batch_size)]
        r.baseline(batches[0])  # the baseline session opens on its first call: not inside its timing
        t0 = time.perf_counter()
        preds, mode_note = _answer(r, args, batches)
        t_branchy = time.perf_counter() - t0
        labels = np.concatenate([p.labels for p in preds])
        exits = np.concatenate([p.exits for p in preds])
        t0 = time.perf_counter()
        base = np.concatenate([r.baseline(b) for b in batches])
        t_base = time.perf_counter() - t0
        counts = np.bincount(exits, minlength=r.num_exits)
        from edgebranchy.artifact.plausibility import accuracy_context
        from edgebranchy.report.verdict import predict_lines

        for line in predict_lines(base == y, labels == y, (counts / n).tolist(), t_base, t_branchy,
                                  calibrated=bool(r.artifact.manifest.get("calibration")),
                                  context=accuracy_context(r.artifact.manifest, y)):
            print(line)
        precision = r.backend.describe().get("precision", "fp32")
        print(f"{n} test samples of {name}, batch {args.batch_size}, backend {args.backend}/{precision}, "
              f"thresholds {', '.join(f'{t:g}' for t in r.thresholds)} ({r.thresholds_source})"
              + (f"; {r.precision_reason}" if r.precision_reason else ""))
        print(f"branchy  accuracy {np.mean(labels == y) * 100:6.2f}%  {t_branchy:.2f} s")
        if mode_note:
            print(mode_note)
        print(f"baseline accuracy {np.mean(base == y) * 100:6.2f}%  {t_base:.2f} s  (wall time here, not a benchmark:"
              " use `edgebranchy bench`)")
        for k, (c, name) in enumerate(zip(counts, r.artifact.exit_names())):
            # an exit no sample took has no accuracy: "-", never nan%
            acc = f"{np.mean(labels[exits == k] == y[exits == k]) * 100:6.2f}%" if c else f"{'-':>7}"
            print(f"{name}: {c:6d} samples ({c / n * 100:5.1f}%), accuracy {acc}")
        if ts is None:
            warn_exit_drift(r, args.drift_alpha, args.drift_min_effect / 100.0)
    return {"precision": precision, "accuracy": float(np.mean(labels == y)), "exit_rates": (counts / n).tolist(),
            "seconds": t_branchy, "baseline_seconds": t_base}


def warn_exit_drift(runner, alpha: float, min_effect: float) -> None:
    """Compare the runner's exit counts with the calibration's; a drift is one line on stderr."""
    import sys

    from edgebranchy.bench.quality import exit_drift

    d = exit_drift(runner.exit_counts, runner.artifact.manifest, overridden=False, alpha=alpha, min_effect=min_effect)
    if d is not None:
        print(d["line"], file=sys.stderr if d["drifted"] else sys.stdout)


def _predict_images(args, opts: dict | None) -> int:
    """Per-image label, exit and entropy for image files, preprocessed as the artifact's input block says."""
    from pathlib import Path

    import numpy as np

    from edgebranchy.data.imagefolder import image_files, load_images
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.runtime.runner import EarlyExitRunner

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise EdgeBranchyError(f"--out {out}: give a .csv or .json file")
    if out is not None:
        from edgebranchy.util.outputs import check_output

        check_output(out, [args.artifact, *args.images], "predictions", force=True, option="--out")
    files = image_files(args.images, strict=args.strict_images)
    rows = []
    with EarlyExitRunner(args.artifact, backend=args.backend, thresholds=args.thresholds, options=opts) as r:
        classes = r.artifact.classes
        inp = r.artifact.manifest["input"]
        for i in range(0, len(files), args.batch_size):
            chunk = files[i:i + args.batch_size]
            p = r.predict(r.artifact.preprocess(load_images(chunk, inp)))
            for f, lab, ex, ent in zip(chunk, p.labels.tolist(), p.exits.tolist(), p.entropy.tolist()):
                rows.append({"file": str(f), "label": classes[lab], "class_index": int(lab), "exit": int(ex),
                             "entropy": float(ent)})
        thresholds = list(r.thresholds)
        names = r.artifact.exit_names()
    if out is None:
        width = max(len(row["file"]) for row in rows)
        print(f"{'file':<{width}}  {'label':<16} exit  entropy")
        for row in rows:
            print(f"{row['file']:<{width}}  {row['label']:<16} {row['exit']:>4}  {row['entropy']:.4f}")
    else:
        _write_answers(out, rows, {"artifact": str(args.artifact), "backend": args.backend,
                                   "thresholds": thresholds})
        print(f"{len(rows)} image(s) -> {out}")
    counts = np.bincount([row["exit"] for row in rows], minlength=len(thresholds) + 1)
    print("exits: " + ", ".join(f"{name}: {c}" for name, c in zip(names, counts.tolist())))
    return 0


def _write_answers(out, rows: list[dict], about: dict) -> None:
    import csv
    import io

    from edgebranchy.util.files import atomic_write_json, atomic_write_text

    if out.suffix.lower() == ".json":
        from edgebranchy.util.kinds import PREDICTIONS_SCHEMA

        atomic_write_json(out, {"schema": PREDICTIONS_SCHEMA, **about, "predictions": rows})
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["file", "label", "class_index", "exit", "entropy"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out, buf.getvalue())

