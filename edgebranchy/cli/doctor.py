"""`edgebranchy doctor [ARTIFACT]`: what works on this device; with ARTIFACT, whether the artifact gives the
answers on this device's backend that ONNX Runtime gives (no torch needed)."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import (add_backend_flags, backend_flag_options, batch_size, bounded_int, bounded_seconds,
                                   nonneg_float, samples, thresholds)
from edgebranchy.vocab import BACKEND_NAMES, PRECISIONS

ORDER = 5
#: options of the artifact check (refused without ARTIFACT)
_ARTIFACT_ONLY = ("backend", "precision", "samples", "batch_size", "dataset", "data_dir", "thresholds", "rtol",
                  "repeats", "profile", "json")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("doctor", help="check this device (Python, ONNX Runtime, TensorRT/CUDA, power, profile); with "
                                      "ARTIFACT, check the artifact's answers on a backend against ONNX Runtime",
                       description="Without ARTIFACT: run first on a new board: reports Python, numpy, ONNX Runtime and "
                                   "its providers; TensorRT and pycuda (versions, CUDA context, GPU, SMs, DLA cores) and "
                                   "a tiny engine compared with ONNX Runtime; every power source with a short sample; "
                                   "the profile auto-detection. Exit status 0 when it ran: absent optional parts are "
                                   "reported, not failures. With ARTIFACT: runs N samples of the artifact's recorded "
                                   "test split (or synthetic inputs of its shape, said so) through --backend (TensorRT: "
                                   "the engines are built first, or reused) and through ONNX Runtime fp32, and reports "
                                   "per exit the largest logit and entropy differences against the tolerance of the "
                                   "backend's precision, whether labels and exits agree, every sample that answers "
                                   "differently with its entropy's distance to the threshold (a near-threshold flip is "
                                   "precision; a far one is not), and each segment's own latency. Exit status 1 when "
                                   "the disagreement is more than the precision explains, 2 on bad input.")
    p.add_argument("artifact", nargs="?", metavar="ARTIFACT", help="artifact directory to check (optional)")
    p.add_argument("--out", help="also write the report as JSON (atomically)")
    p.add_argument("--power-sample", type=bounded_seconds(), default=0.2, help="without ARTIFACT: seconds of each power source's "
                                                                   "sample")
    p.add_argument("--backend", help=f"with ARTIFACT: the backend to check, {', '.join(BACKEND_NAMES)} "
                                     "(default: onnxruntime)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="with ARTIFACT: the graphs or engines to check (default: fp32; tensorrt: the profile's)")
    p.add_argument("--samples", type=samples, metavar="N", help="with ARTIFACT: the first N test samples "
                                                                     "(default: 500)")
    p.add_argument("--batch-size", type=batch_size, help="with ARTIFACT: samples per call (default: 1)")
    p.add_argument("--dataset", help="with ARTIFACT: run this data set's test split instead of the recorded one "
                                     "(no synthetic fallback then)")
    p.add_argument("--data-dir", help="with ARTIFACT: where the data set's files are")
    p.add_argument("--thresholds", type=thresholds, help="with ARTIFACT: check at these thresholds instead of the "
                                                         "artifact's, comma separated")
    p.add_argument("--rtol", type=nonneg_float, help="with ARTIFACT: relative tolerance instead of the precision's "
                                                     "(default: 1e-4 for fp32, 1e-2 for fp16 and TF32)")
    p.add_argument("--repeats", type=bounded_int(1, "repeats"), help="with ARTIFACT: calls per segment for its latency (default: 20)")
    p.add_argument("--profile", help="with ARTIFACT and --backend tensorrt: the device profile whose [tensorrt] "
                                     "settings build the engines (default: auto)")
    p.add_argument("--json", action="store_true", help="with ARTIFACT: print the report as JSON instead of the table")
    add_backend_flags(p)
    return p


def run(args) -> int:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.files import atomic_write_json

    if args.artifact is None:
        given = [f"--{a.replace('_', '-')}" for a in _ARTIFACT_ONLY if getattr(args, a) not in (None, False)]
        if given:
            raise EdgeBranchyError(f"{', '.join(given)}: only with an ARTIFACT to check "
                                   f"(edgebranchy doctor ARTIFACT {given[0]} ...; without one, doctor checks the device)")
        from edgebranchy.device.doctor_device import format_table, run_doctor

        _check_out(args)
        report = run_doctor(power_sample_s=args.power_sample)
        print(format_table(report))
        if args.out:
            atomic_write_json(args.out, report)
            print(f"report: {args.out}")
        return 0
    return _artifact(args)


def _check_out(args) -> None:
    """--out: missing, or an earlier doctor report (rewritten); never a checkpoint, results or another file."""
    if args.out:
        from edgebranchy.util.outputs import check_output

        check_output(args.out, [args.artifact], "doctor", force=True, option="--out")


def _artifact(args) -> int:
    import json

    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.device.doctor_artifact import check_artifact
    from edgebranchy.device.doctor_artifact_text import format_report
    from edgebranchy.util.files import atomic_write_json
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.artifact, "artifact", "doctor")
    _check_out(args)
    backend = args.backend or "onnxruntime"
    if args.profile and backend != "tensorrt":
        raise EdgeBranchyError("--profile chooses the TensorRT build settings: it goes with --backend tensorrt")
    rep = check_artifact(args.artifact, backend=backend, options=backend_flag_options(args, backend),
                         precision=args.precision, samples=args.samples or 500, batch_size=args.batch_size or 1,
                         dataset=args.dataset, data_dir=args.data_dir, thresholds=args.thresholds, rtol=args.rtol,
                         repeats=args.repeats or 20, profile=args.profile or "auto")
    if args.out:
        atomic_write_json(args.out, rep)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    if args.out and not args.json:
        print(f"report: {args.out}")
    return 0 if rep["passed"] else 1
