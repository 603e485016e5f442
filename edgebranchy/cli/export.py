"""`edgebranchy export`: per-segment ONNX graphs from a checkpoint (engines for an artifact: `edgebranchy build`)."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import bounded_int, deprecated_alias
from edgebranchy.cli.build import add_build_flags
from edgebranchy.vocab import PRECISIONS

ORDER = 30


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help="write the per-segment ONNX artifact from a checkpoint",
        description="From a checkpoint: one ONNX graph per segment (trunk stage + exit head, entropy computed in "
                    "the graph) plus baseline.onnx, each checked with onnx.checker, simplified with onnxsim and "
                    "compared with PyTorch on real validation samples; the artifact directory appears atomically. "
                    "On an NVIDIA device, `edgebranchy build ARTIFACT --profile DEVICE` then adds one TensorRT "
                    "engine per segment, cached per device.")
    p.add_argument("source", metavar="checkpoint", help="CHECKPOINT.pt written by `edgebranchy train` (or `calibrate`)")
    p.add_argument("--out", help="artifact directory to create")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="fp16 also writes FP16 graphs (what TensorRT 11 needs for FP16 engines); int8 also writes INT8 "
                        "graphs with explicit Q/DQ (ONNX Runtime's static quantization, exit heads in FP32); then "
                        "recalibrate them with `edgebranchy calibrate ARTIFACT --precision int8` (default: fp32)")
    p.add_argument("--data-dir", help="dataset directory for the numerical check (default: where the checkpoint "
                                      "was trained)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument("--check-samples", type=bounded_int(0, "samples"), default=64,
                   help="validation samples for the numerical check (0 skips it; recorded as skipped)")
    p.add_argument("--calibration-samples", type=bounded_int(0, "samples"), default=256,
                   help="with --precision int8: validation samples whose activation ranges set the INT8 scales")
    p.add_argument("--keep-all-exits", action="store_true",
                   help="keep side exits that calibration switched off (threshold 0) as their own segments")
    p.add_argument("--no-single-graph", action="store_true",
                   help="skip single.onnx, the batch-1 graph with the exit decisions inside (ONNX If)")
    p.add_argument("--force", action="store_true", help="replace an existing artifact")
    # `export ARTIFACT --tensorrt`, the old spelling of `build ARTIFACT`: hidden, still works, says what to use
    deprecated_alias(p, "--tensorrt", "--tensorrt", use="`edgebranchy build ARTIFACT`", flag=True)
    add_build_flags(p, hidden=True)
    return p


def run(args) -> int:
    from pathlib import Path

    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.talk import say
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.source, "artifact" if args.tensorrt else "checkpoint", "export")
    if args.tensorrt:
        from edgebranchy.cli.build import build

        return build(args.source, args.profile, args.precision, args.max_batch, args.force)
    if not args.out:
        raise EdgeBranchyError("--out ARTIFACT_DIR is required for the ONNX export")
    if Path(args.source).is_dir():
        raise EdgeBranchyError(f"{args.source} is a directory: export takes a checkpoint; "
                               f"to build TensorRT engines into an artifact: edgebranchy build {args.source}")
    say(f"export: loading torch and {args.source}")
    from edgebranchy.export.onnx import export_checkpoint

    out = export_checkpoint(args.source, args.out, precision=args.precision or "fp32", simplify=not args.no_simplify,
                            check_samples=args.check_samples, force=args.force,
                            prune=not args.keep_all_exits, data_dir=args.data_dir,
                            single_graph=not args.no_single_graph, calibration_samples=args.calibration_samples)
    print(f"artifact: {out}")
    return 0
