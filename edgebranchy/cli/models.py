"""`edgebranchy models`: the zoo, with parameters and MACs per stage and exit."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import bounded_int, resnet_depth

ORDER = 5


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("models", help="list the zoo networks and what each exit costs",
                       description="Show parameters and multiply-accumulates per stage and per exit head, so you "
                                   "see what each exit costs before training.")
    p.add_argument("name", nargs="?", help="one model (default: all)")
    p.add_argument("--in-channels", type=bounded_int(1, "channels"), help="input channels (default: the paper's)")
    p.add_argument("--input-size", type=bounded_int(1, "input_size"), help="square input size (default: the paper's)")
    p.add_argument("--num-classes", type=bounded_int(1, "classes"), default=10, help="classes of the final and side exits")
    p.add_argument("--depth", type=resnet_depth, default=110, help="b-resnet depth (6n+2)")
    return p


_PAPER_INPUT = {"b-lenet": (1, 28), "b-alexnet": (3, 32), "b-resnet": (3, 32)}


def run(args) -> int:
    from edgebranchy.util.talk import say

    say("models: loading torch and building the networks")
    from edgebranchy.models.registry import DESCRIPTIONS, build_model, model_names
    from edgebranchy.models.summary import format_summary, summarize

    names = [args.name] if args.name else model_names()
    for i, name in enumerate(names):
        c, s = _PAPER_INPUT.get(name, (3, 32))
        c, s = args.in_channels or c, args.input_size or s
        margs = {"in_channels": c, "num_classes": args.num_classes, "input_size": s}
        if name == "b-resnet":
            margs["depth"] = args.depth
        net = build_model(name, margs)
        if i:
            print()
        print(f"{name}: {DESCRIPTIONS.get(name, 'user model')}")
        print(format_summary(f"  input {c}x{s}x{s}", summarize(net, (c, s, s))))
    return 0
