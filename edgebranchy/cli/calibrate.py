"""`edgebranchy calibrate`: choose the entropy thresholds on the held-out validation split."""
from __future__ import annotations

import argparse
import os
import sys

from edgebranchy.cli._args import batch_size, bounded_int, fraction, percentage_points, thresholds
from edgebranchy.vocab import PRECISIONS

ORDER = 20


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "calibrate", help="choose exit thresholds for an accuracy target or a cost budget",
        description="Collect every exit's logits on the validation split (held out from training) and choose "
                    "the thresholds exactly over the entropy values that matter: the cheapest thresholds within "
                    "--max-accuracy-drop points of the final exit, or the most accurate within --budget of the "
                    "baseline's cost. Costs are MACs counted from the model, or per-segment latencies measured on "
                    "the device (--cost RESULTS.json from `edgebranchy bench`). The result and the whole "
                    "accuracy-versus-cost frontier are stored in a new checkpoint (--out NEW.pt) or, with --in-place, in "
                    "the given one; the same table is printed for the untouched test split so over-fitting to "
                    "validation shows. Accuracy drops are in percentage points; budgets and relative costs are "
                    "fractions of the baseline's cost (0.4 = 40%).")
    p.add_argument("checkpoint", help="checkpoint written by `edgebranchy train`, or an artifact directory: then the "
                                      "thresholds are recomputed from the deployed graphs' outputs on this device "
                                      "(no torch) and both calibrations are recorded in its manifest (the original "
                                      "is kept); either way, give --out or --in-place")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--out", metavar="NEW",
                   help="write the calibrated copy here (NEW.pt for a checkpoint, a new directory for an artifact); "
                        "the given one stays as it was")
    w.add_argument("--in-place", action="store_true",
                   help="store the calibration in the given checkpoint or artifact (rewritten atomically)")
    p.add_argument("--force", action="store_true", help="with --out: replace an earlier checkpoint or artifact there")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--max-accuracy-drop", type=percentage_points, metavar="D",
                   help="accuracy you accept to lose, in percentage points (0.5 = half a point; default 0.5 when no "
                        "target is given)")
    g.add_argument("--budget", type=fraction, metavar="B",
                   help="cost budget as a fraction of the baseline's cost, in (0, 1] (0.4 = 40%%)")
    g.add_argument("--thresholds", metavar="T0[,T1..]", type=thresholds,
                   help="evaluate and store hand-picked thresholds instead of searching (e.g. the paper's 0.025)")
    p.add_argument("--reference", choices=["final-exit", "baseline"], default="final-exit",
                   help="accuracy that --max-accuracy-drop is measured from: the BranchyNet's final exit or the "
                        "separately trained baseline")
    p.add_argument("--cost", default="macs", metavar="macs|RESULTS.json",
                   help="'macs' (multiply-accumulates counted from the model; 'flops' is a deprecated alias) or a "
                        "bench RESULTS.json (per-segment latencies measured on the device)")
    p.add_argument("--temperature", action="store_true", help="fit a softmax temperature per exit on validation")
    p.add_argument("--normalize", action="store_true", help="entropy divided by ln(C) (thresholds in [0, 1])")
    p.add_argument("--data-dir", help="dataset directory (default: where the checkpoint was trained)")
    p.add_argument("--frontier-rows", type=bounded_int(1, "rows"), default=12, help="rows of the Pareto frontier to print")
    d = p.add_argument_group("artifact (device) calibration")
    d.add_argument("--backend", default="onnxruntime", help="backend that runs the deployed graphs")
    d.add_argument("--precision", choices=PRECISIONS, help="which graphs the backend runs (default: its own)")
    d.add_argument("--dataset", help="dataset name, for an artifact that records none (default: the one it "
                                     "records, with the same split; another one is refused)")
    d.add_argument("--batch-size", type=batch_size, default=256, help="batch size of the device runs")
    d.add_argument("--no-apply", action="store_true",
                   help="record the device thresholds without making them the artifact's thresholds")
    return p


def _cost(args) -> str:
    """--cost for the library: "flops" (MACs) or a results path; 'macs' and 'flops' both mean MACs."""
    return "flops" if args.cost.lower() in ("macs", "flops") else args.cost


def cost_words(source: str) -> str:
    """The record's cost source in the CLI's words: MACs are called MACs ("flops" is the record's old key)."""
    if source.startswith("flops (MACs ") and source.endswith(")"):
        return "MACs " + source[len("flops (MACs "):-1]
    return source


def run(args) -> int:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util import talk
    from edgebranchy.util.kinds import what_is
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.checkpoint, "checkpoint|artifact", "calibrate")
    if args.cost.lower() not in ("macs", "flops"):
        refuse_wrong_kind(args.cost, "results", "calibrate --cost")
    from pathlib import Path

    kind = what_is(args.checkpoint)
    if kind == "artifact" or Path(args.checkpoint).is_dir():
        if args.force and not args.out:
            raise EdgeBranchyError("--force goes with --out")
        return _run_artifact(args)
    if kind == "missing":
        raise EdgeBranchyError(f"checkpoint not found: {args.checkpoint}")
    if not args.out and not args.in_place:
        raise EdgeBranchyError(f"say where the calibration goes: --out NEW.pt (a new checkpoint; {args.checkpoint} "
                               "stays as it is) or --in-place (store it in the given checkpoint)")
    if args.force and not args.out:
        raise EdgeBranchyError("--force goes with --out")
    from edgebranchy.exits.table import calibration_table, frontier_table

    talk.say(f"calibrating {args.checkpoint}: loading torch and the validation data")
    from edgebranchy.util.locks import output_lock

    with output_lock(args.out or args.checkpoint, "--out" if args.out else "checkpoint",
                     check=_out_check(args, "checkpoint")):
        target = _target_checkpoint(args)
        try:
            rec = _calibrate(args, target)
            if target != args.checkpoint:
                os.replace(target, args.out)
        finally:
            if target != args.checkpoint and os.path.exists(target):
                os.unlink(target)
    written = args.out or args.checkpoint
    temps = rec.get("temperatures")
    print(f"threshold search: {rec['search_seconds']:.2f} s over {rec['validation']['n']} validation samples")
    print(f"cost: {cost_words(rec['cost_source'])}" + (f"; temperatures {', '.join(f'{t:.3f}' for t in temps)}" if temps else ""))
    fe = rec["final_exit_accuracy"]
    print(f"final exit alone: validation {fe['validation'] * 100:.2f}%, test {fe['test'] * 100:.2f}%")
    print(calibration_table(rec["validation"], rec["test"], rec["thresholds"], cost_source=rec.get("cost_source")))
    if rec.get("frontier"):
        print("\naccuracy-versus-cost frontier (validation):")
        print(frontier_table(rec["frontier"], max_rows=args.frontier_rows, cost_source=rec.get("cost_source")))
    print(f"\nstored in {written}; next: edgebranchy export {written} --out ARTIFACT_DIR")
    return 0


def _out_check(args, kind: str):
    """The check of --out (None with --in-place: the given checkpoint or artifact is rewritten)."""
    if not args.out:
        return None
    from edgebranchy.util.outputs import check_output

    return lambda: check_output(args.out, [args.checkpoint], kind, force=args.force, data_dirs=[args.data_dir])


def _target_checkpoint(args) -> str:
    """The file calibration rewrites: the checkpoint itself (--in-place) or a copy beside --out."""
    if args.in_place:
        return args.checkpoint
    import shutil
    import tempfile
    from pathlib import Path

    from edgebranchy.util.outputs import check_output

    out = check_output(args.out, [args.checkpoint], "checkpoint", force=args.force, data_dirs=[args.data_dir])
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        shutil.copyfile(Path(args.checkpoint), tmp)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _calibrate(args, checkpoint: str) -> dict:
    from edgebranchy.calibration import calibrate_checkpoint

    return calibrate_checkpoint(checkpoint, max_accuracy_drop=args.max_accuracy_drop, budget=args.budget,
                                thresholds=args.thresholds, reference=args.reference, cost=_cost(args),
                                temperature=args.temperature, normalize=args.normalize, data_dir=args.data_dir,
                                log=lambda s: print(s, flush=True), name=args.checkpoint, warn=_warn)


def _warn(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _run_artifact(args) -> int:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.exits.table import calibration_table

    if args.temperature or args.normalize:
        raise EdgeBranchyError("--temperature and --normalize are fixed in an exported artifact's graphs; "
                               "calibrate the checkpoint to change them")
    if not args.out and not args.in_place:  # the old spelling: an artifact was always calibrated in place
        print("edgebranchy calibrate: note: an artifact without --in-place is deprecated; use --in-place (or --out "
              "NEW_ARTIFACT for a calibrated copy)", file=sys.stderr, flush=True)
    from edgebranchy.util.locks import output_lock

    with output_lock(args.out or args.checkpoint, "--out" if args.out else "artifact",
                     check=_out_check(args, "artifact")):
        rec = _calibrate_copy(args) if args.out else _calibrate_artifact(args, args.checkpoint)
    written = args.out or args.checkpoint
    prev = rec["previous_thresholds_here"]
    print(f"device calibration on {rec['backend']}/{rec['precision']}, {rec['validation']['n']} validation samples; "
          f"cost: {cost_words(rec['cost_source'])}")
    print("thresholds in the artifact before, on this backend:")
    print(calibration_table(prev["validation"], prev["test"], prev["thresholds"], cost_source=prev.get("cost_source")))
    print("recomputed on this backend:")
    print(calibration_table(rec["validation"], rec["test"], rec["thresholds"], cost_source=rec.get("cost_source")))
    state = ("recorded for int8 runs (the fp32 thresholds in `exits` stay)" if rec["precision"] == "int8"
             else "recorded (not applied: --no-apply)" if args.no_apply else "recorded and applied")
    print(f"\n{state} in {written}/manifest.json (device_calibration); the original calibration is kept")
    return 0


def _calibrate_artifact(args, artifact) -> dict:
    from edgebranchy.calibration import calibrate_artifact

    opts = {"precision": args.precision} if args.precision else None
    return calibrate_artifact(artifact, backend=args.backend, options=opts, dataset=args.dataset,
                              data_dir=args.data_dir, max_accuracy_drop=args.max_accuracy_drop, budget=args.budget,
                              thresholds=args.thresholds, reference=args.reference, cost=_cost(args),
                              batch_size=args.batch_size, apply=not args.no_apply, name=args.checkpoint,
                              log=lambda s: print(s, flush=True), warn=_warn)


def _calibrate_copy(args) -> dict:
    """The artifact copied into a temporary sibling of --out, calibrated there, then renamed to --out."""
    import shutil

    from edgebranchy.artifact.manifest import write_artifact_dir
    from edgebranchy.util.outputs import check_output

    out = check_output(args.out, [args.checkpoint], "artifact", force=args.force, data_dirs=[args.data_dir])
    done: dict = {}

    def build(tmp) -> None:
        shutil.copytree(args.checkpoint, tmp, symlinks=True, dirs_exist_ok=True)
        done.update(_calibrate_artifact(args, tmp))

    write_artifact_dir(out, build, force=args.force)
    return done
