"""`edgebranchy export`: per-segment ONNX graphs from a checkpoint; TensorRT engines on the device."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import nonneg_int, positive_int
from edgebranchy.vocab import PRECISIONS

ORDER = 30


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help="write the per-segment ONNX artifact (and TensorRT engines on the device)",
        description="From a checkpoint: one ONNX graph per segment (trunk stage + exit head, entropy computed in "
                    "the graph) plus baseline.onnx, each checked with onnx.checker, simplified with onnxsim and "
                    "compared with PyTorch on real validation samples; the artifact directory appears atomically. "
                    "On an NVIDIA device, `edgebranchy export ARTIFACT --tensorrt --profile DEVICE` adds one "
                    "TensorRT engine per segment, cached per device.")
    p.add_argument("source", help="CHECKPOINT.pt (ONNX export) or ARTIFACT_DIR (with --tensorrt)")
    p.add_argument("--out", help="artifact directory to create (needed for the ONNX export; not with --tensorrt)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="ONNX export: fp16 also writes FP16 graphs (what TensorRT 11 needs for FP16 engines; "
                        "default: fp32). With --tensorrt: the engine precision (default: the profile's)")
    p.add_argument("--data-dir", help="dataset directory for the numerical check (default: where the checkpoint "
                                      "was trained)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument("--check-samples", type=nonneg_int, default=64,
                   help="validation samples for the numerical check (0 skips it; recorded as skipped)")
    p.add_argument("--keep-all-exits", action="store_true",
                   help="keep side exits that calibration switched off (threshold 0) as their own segments")
    p.add_argument("--no-single-graph", action="store_true",
                   help="skip single.onnx, the batch-1 graph with the exit decisions inside (ONNX If)")
    p.add_argument("--force", action="store_true", help="replace an existing artifact / rebuild cached engines")
    p.add_argument("--tensorrt", action="store_true", help="build TensorRT engines into an existing artifact")
    p.add_argument("--profile", default="auto", help="device profile for the TensorRT build settings")
    p.add_argument("--max-batch", type=positive_int, help="maximum batch of the engines (default: the profile's)")
    return p


def run(args) -> int:
    from pathlib import Path

    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.talk import say
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.source, "artifact" if args.tensorrt else "checkpoint", "export")
    if args.tensorrt:
        return _tensorrt(args)
    if not args.out:
        raise EdgeBranchyError("--out ARTIFACT_DIR is required for the ONNX export")
    if Path(args.source).is_dir():
        raise EdgeBranchyError(f"{args.source} is a directory: the ONNX export takes a checkpoint; "
                               "to build TensorRT engines into an artifact, add --tensorrt")
    say(f"export: loading torch and {args.source}")
    from edgebranchy.export.onnx import export_checkpoint

    out = export_checkpoint(args.source, args.out, precision=args.precision or "fp32", simplify=not args.no_simplify,
                            check_samples=args.check_samples, force=args.force,
                            prune=not args.keep_all_exits, data_dir=args.data_dir,
                            single_graph=not args.no_single_graph)
    print(f"artifact: {out}")
    return 0


def _tensorrt(args) -> int:
    from edgebranchy.tensorrt.build import build_engines
    from edgebranchy.measure.profiles import resolve_profile

    profile, reason = resolve_profile(args.profile)
    print(f"profile: {profile.name} ({reason})")
    changes = {k: v for k, v in (("max_batch", args.max_batch), ("precision", args.precision)) if v}
    settings = profile.tensorrt.replace(**changes)  # validated again with the command line's changes
    # build_engines verifies the ONNX graphs it reads and rebuilds damaged engines itself
    info = build_engines(args.source, settings, force=args.force)
    state = "reused from the cache" if info.get("cached") else "built"
    print(f"engines {state}: {args.source}/engines/{info['device_key']}/ ({info.get('precision')}, "
          f"TensorRT {info.get('tensorrt', '?')}, {info.get('gpu', '?')})")
    return 0
