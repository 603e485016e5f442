"""`edgebranchy calibrate`: choose the entropy thresholds on the held-out validation split."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import fraction, percentage_points, positive_int, thresholds

ORDER = 20


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "calibrate", help="choose exit thresholds for an accuracy target or a cost budget",
        description="Collect every exit's logits on the validation split (held out from training) and choose "
                    "the thresholds exactly over the entropy values that matter: the cheapest thresholds within "
                    "--max-accuracy-drop points of the final exit, or the most accurate within --budget of the "
                    "baseline's cost. Costs are MACs counted from the model, or per-segment latencies measured on "
                    "the device (--cost RESULTS.json from `edgebranchy bench`). The result and the whole "
                    "accuracy-versus-cost frontier are stored in the checkpoint, then the same table is printed "
                    "for the untouched test split so over-fitting to validation shows.")
    p.add_argument("checkpoint", help="checkpoint written by `edgebranchy train` (updated in place, atomically), or "
                                      "an artifact directory: then the thresholds are recomputed from the deployed "
                                      "graphs' outputs on this device (no torch) and both calibrations are recorded "
                                      "in its manifest")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--max-accuracy-drop", type=percentage_points, metavar="D",
                   help="percentage points of accuracy you accept to lose (default 0.5 when no target is given)")
    g.add_argument("--budget", type=fraction, metavar="B", help="cost budget as a fraction of the baseline's (e.g. 0.4)")
    g.add_argument("--thresholds", metavar="T0[,T1..]", type=thresholds,
                   help="evaluate and store hand-picked thresholds instead of searching (e.g. the paper's 0.025)")
    p.add_argument("--reference", choices=["final-exit", "baseline"], default="final-exit",
                   help="accuracy that --max-accuracy-drop is measured from: the BranchyNet's final exit or the "
                        "separately trained baseline")
    p.add_argument("--cost", default="flops", help="'flops' (MACs counted from the model) or a bench RESULTS.json")
    p.add_argument("--temperature", action="store_true", help="fit a softmax temperature per exit on validation")
    p.add_argument("--normalize", action="store_true", help="entropy divided by ln(C) (thresholds in [0, 1])")
    p.add_argument("--data-dir", help="dataset directory, if not where the checkpoint was trained")
    p.add_argument("--frontier-rows", type=positive_int, default=12, help="rows of the Pareto frontier to print")
    d = p.add_argument_group("artifact (device) calibration")
    d.add_argument("--backend", default="onnxruntime", help="backend that runs the deployed graphs")
    d.add_argument("--precision", choices=["fp32", "fp16"], help="which graphs the backend runs (default: its own)")
    d.add_argument("--dataset", help="dataset name (default: the one the artifact records, same split)")
    d.add_argument("--batch-size", type=positive_int, default=256, help="batch size of the device runs")
    d.add_argument("--no-apply", action="store_true",
                   help="record the device thresholds without making them the artifact's thresholds")
    return p


def run(args) -> int:
    from pathlib import Path

    if Path(args.checkpoint).is_dir():
        return _run_artifact(args)
    from edgebranchy.exits.table import calibration_table, frontier_table
    from edgebranchy.train.calibration import calibrate_checkpoint

    ts = args.thresholds
    rec = calibrate_checkpoint(args.checkpoint, max_accuracy_drop=args.max_accuracy_drop, budget=args.budget,
                               thresholds=ts, reference=args.reference, cost=args.cost,
                               temperature=args.temperature, normalize=args.normalize, data_dir=args.data_dir,
                               log=lambda s: print(s, flush=True))
    temps = rec.get("temperatures")
    print(f"threshold search: {rec['search_seconds']:.2f} s over {rec['validation']['n']} validation samples")
    print(f"cost: {rec['cost_source']}" + (f"; temperatures {', '.join(f'{t:.3f}' for t in temps)}" if temps else ""))
    fe = rec["final_exit_accuracy"]
    print(f"final exit alone: validation {fe['validation'] * 100:.2f}%, test {fe['test'] * 100:.2f}%")
    print(calibration_table(rec["validation"], rec["test"], rec["thresholds"]))
    if rec.get("frontier"):
        print("\naccuracy-versus-cost frontier (validation):")
        print(frontier_table(rec["frontier"], max_rows=args.frontier_rows))
    print(f"\nstored in {args.checkpoint}; next: edgebranchy export {args.checkpoint} --out ARTIFACT_DIR")
    return 0


def _run_artifact(args) -> int:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.exits.device_calibration import calibrate_artifact
    from edgebranchy.exits.table import calibration_table

    if args.temperature or args.normalize:
        raise EdgeBranchyError("--temperature and --normalize are fixed in an exported artifact's graphs; "
                               "calibrate the checkpoint to change them")
    opts = {"precision": args.precision} if args.precision else None
    rec = calibrate_artifact(args.checkpoint, backend=args.backend, options=opts, dataset=args.dataset,
                             data_dir=args.data_dir, max_accuracy_drop=args.max_accuracy_drop, budget=args.budget,
                             thresholds=args.thresholds, reference=args.reference, cost=args.cost,
                             batch_size=args.batch_size, apply=not args.no_apply, log=lambda s: print(s, flush=True))
    prev = rec["previous_thresholds_here"]
    print(f"device calibration on {rec['backend']}/{rec['precision']}, {rec['validation']['n']} validation samples; "
          f"cost: {rec['cost_source']}")
    print("thresholds in the artifact before, on this backend:")
    print(calibration_table(prev["validation"], prev["test"], prev["thresholds"]))
    print("recomputed on this backend:")
    print(calibration_table(rec["validation"], rec["test"], rec["thresholds"]))
    state = "recorded (not applied: --no-apply)" if args.no_apply else "recorded and applied"
    print(f"\n{state} in {args.checkpoint}/manifest.json (device_calibration); the original calibration is kept")
    return 0
