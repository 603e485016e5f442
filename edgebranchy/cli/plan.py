"""`edgebranchy plan`: where the side exits should go, from measurements on this device."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import fraction, percentage_points, positive_int, resnet_depth
from edgebranchy.cli._images import add_image_flags, image_argv, image_options

ORDER = 8


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "plan", help="choose where the side exits go, from measured costs and head accuracies",
        description="Enumerate the candidate split points of a network (block boundaries, or --candidates), and "
                    "for each: its cost (the prefix up to it and an exit head there, exported to ONNX and timed with "
                    "ONNX Runtime at --batch-size; MACs only with --cost macs or without ONNX Runtime, labelled "
                    "so) and its accuracy (an exit head trained on the frozen network's features there, computed "
                    "once and cached; evaluated on the validation split). Then choose at most --max-exits exits and "
                    "their thresholds (the exact search `calibrate` uses) for the best expected speedup within "
                    "--max-accuracy-drop (or the best accuracy within --budget), print the frontier, plot it, and "
                    "write the plan file for `edgebranchy train --plan`. A killed plan continues from its cache.")
    p.add_argument("model", help="b-alexnet or b-resnet (the zoo network's main path), or module:function returning "
                                 "your nn.Module (ending in its classifier; called with in_channels, num_classes, "
                                 "input_size)")
    p.add_argument("--depth", type=resnet_depth, help="ResNet depth 6n+2, b-resnet only (default: 110, as train; "
                                                      "20 for quick runs)")
    p.add_argument("--init-weights", metavar="FILE",
                   help="the trained network's weights: its state_dict, or an edgebranchy checkpoint of the zoo "
                        "network (its main path)")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist, mnist, cifar10, digits, synthetic, or imagefolder (DIR/<class>/*.jpg)")
    p.add_argument("--data-dir", help="directory with the dataset files (default: the system's copy)")
    add_image_flags(p)
    p.add_argument("--candidates", metavar="NAMES", help="comma-separated split points to consider (default: the "
                                                         "block boundaries where one tensor crosses)")
    p.add_argument("--reference", metavar="NAMES",
                   help="a placement to report beside the chosen one (default: the zoo network's own; 'none')")
    p.add_argument("--max-exits", type=positive_int, default=2, help="most side exits to place")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--max-accuracy-drop", type=percentage_points, metavar="D",
                   help="percentage points of validation accuracy below the final exit allowed (default 0.5)")
    g.add_argument("--budget", type=fraction, metavar="B", help="cost budget as a fraction of the whole model's cost")
    p.add_argument("--head", choices=("conv", "linear", "pool"), default="conv",
                   help="exit head: conv (3x3 conv + pool + FC, from_model's default), linear (FC) or pool "
                        "(global average pool + FC)")
    p.add_argument("--head-epochs", type=positive_int, default=4, help="epochs of each head's training")
    p.add_argument("--train-samples", type=positive_int, default=10000,
                   help="training samples the heads learn from (a seeded random subset)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="batch size the costs are measured at")
    p.add_argument("--cost", choices=("measured", "macs"), default="measured",
                   help="measured: ONNX Runtime latencies on this machine; macs: counted, not measured")
    p.add_argument("--rounds", type=positive_int, default=15, help="interleaved timing rounds")
    p.add_argument("--val-size", type=positive_int, help="validation split size (as in train)")
    p.add_argument("--samples", type=positive_int, metavar="N", help="use only the first N samples (as in train)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (as in train) and of the heads")
    p.add_argument("--cache", default="runs/plan-cache", help="directory of the cached features, heads and costs")
    p.add_argument("--out", default="runs/plan.json", help="plan file to write (the plot goes beside it, .png)")
    p.add_argument("--force", action="store_true", help="replace an earlier plan file at --out")
    return p


def _names(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def run(args) -> int:
    from edgebranchy.util.outputs import check_output
    from edgebranchy.util.talk import say

    from edgebranchy.errors import EdgeBranchyError

    if args.depth is not None and args.model != "b-resnet":
        raise EdgeBranchyError("--depth applies to b-resnet only")
    image = image_options(args)
    check_output(args.out, [args.init_weights], "plan", force=args.force, data_dirs=[args.data_dir])
    say(f"plan: loading torch and {args.dataset}")
    from pathlib import Path

    from edgebranchy.calibration.target import DEFAULT_DROP
    from edgebranchy.plan.file import write_plan
    from edgebranchy.plan.render import candidate_table, frontier_table, plot
    from edgebranchy.plan.run import PlanOptions, make_plan

    ref = None if args.reference is None else ([] if args.reference.strip() == "none" else _names(args.reference))
    drop = None if args.budget is not None else (
        DEFAULT_DROP if args.max_accuracy_drop is None else args.max_accuracy_drop)
    o = PlanOptions(model=args.model, dataset=args.dataset, data_dir=args.data_dir, image=image,
                    init_weights=args.init_weights, backbone_args={} if args.depth is None else {"depth": args.depth},
                    candidates=_names(args.candidates), reference=ref, max_exits=args.max_exits,
                    max_accuracy_drop=drop, budget=args.budget, head=args.head, head_epochs=args.head_epochs,
                    train_samples=args.train_samples, batch_size=args.batch_size, cost=args.cost,
                    rounds=args.rounds, val_size=args.val_size, samples=args.samples, seed=args.seed,
                    cache=args.cache)
    doc = make_plan(o)
    write_plan(args.out, doc)
    png = Path(args.out).with_suffix(".png")
    plot(doc, png)
    print(candidate_table(doc))
    print()
    print(frontier_table(doc))
    print(f"plan: {args.out} (exits after {', '.join(doc['split_points'])}; plot {png}; {doc['seconds']:.0f} s)")
    print(f"next: {_next(args, image)}")
    return 0


def _next(args, image) -> str:
    """The `train --plan` command for the plan just written, reading the data as plan read it."""
    import shlex

    argv = ["edgebranchy", "train", "--plan", args.out, "--dataset", args.dataset]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += image_argv(image)
    text = " ".join(shlex.quote(str(a)) for a in argv)
    return text + (" --init-weights BACKBONE_STATE_DICT --freeze-backbone" if args.init_weights else "")
