"""`edgebranchy train`: baseline first, then joint BranchyNet training."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import (batch_size, betas, bounded_int, deprecated_alias, device, exit_weights,
                                   positive_float, resnet_depth, samples, seed)
from edgebranchy.cli._images import add_image_flags, image_options

ORDER = 10


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train a BranchyNet and its baseline network",
        description="Train the baseline network alone, initialise the BranchyNet from it, then train all exits "
                    "jointly on the weighted sum of their cross-entropy losses (the paper's method). "
                    "Defaults (Adam 1e-3, betas 0.9/0.999, batch 128) were chosen by measurement; "
                    "--paper-recipe uses the paper's betas 0.99/0.999 and batch 512. "
                    "Under torchrun, trains with DistributedDataParallel.")
    p.add_argument("--model", help="b-lenet, b-alexnet, b-resnet, or module:function (default: b-lenet)")
    p.add_argument("--depth", type=resnet_depth, help="ResNet depth 6n+2, b-resnet only (default: 110, the paper's; 20 for quick runs)")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist, mnist, cifar10, digits, synthetic, or imagefolder (DIR/<class>/*.jpg)")
    p.add_argument("--data-dir", help="directory with the dataset files (default: $EDGEBRANCHY_DATA/NAME, else the system's copy)")
    add_image_flags(p)
    b = p.add_argument_group("your own model (--model module:function)")
    b.add_argument("--plan", metavar="PLAN",
                   help="a plan file from `edgebranchy plan`: the network it planned, split at its chosen points "
                        "with its exit heads (instead of --model)")
    b.add_argument("--freeze-backbone", action="store_true",
                   help="train only the side exit heads on the frozen model (no baseline phase: the baseline and "
                        "the main exit are the given model)")
    b.add_argument("--init-weights", metavar="FILE",
                   help="a state_dict (weights only) loaded into the model before training, e.g. "
                        "torch.save(model.state_dict(), FILE)")
    b.add_argument("--init-skip", action="append", metavar="PREFIX",
                   help="with --init-weights: leave the model's weights under this module path as initialised "
                        "and ignore the file's (e.g. fc or classifier: an ImageNet classifier in a 10-class "
                        "model); comma-separated or repeated")
    p.add_argument("--out", default="runs/model.pt", help="checkpoint to write")
    p.add_argument("--epochs", type=bounded_int(1, "epochs"), default=10,
                   help="epochs PER PHASE: the baseline phase and then the joint phase each run --epochs "
                        "(as in quickstart), unless --baseline-epochs is given")
    p.add_argument("--baseline-epochs", type=bounded_int(0, "epochs"),
                   help="epochs of the baseline phase (default: --epochs; 0 skips it)")
    p.add_argument("--batch-size", type=batch_size, help="global batch size (default 128; paper recipe 512)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    p.add_argument("--betas", type=betas, help="Adam betas, two numbers (default: 0.9,0.999; with --paper-recipe 0.99,0.999)")
    p.add_argument("--exit-weights", type=exit_weights, help="loss weight per exit (default 1.0 per side exit, 0.3 last)")
    p.add_argument("--paper-recipe", action="store_true", help="the paper's Adam betas (0.99, 0.999) and batch 512")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the train/validation split, the initial weights and the batch order")
    p.add_argument("--val-size", type=samples,
                   help="training samples held out as the validation split for calibration (default: 5000 on the "
                        "60k/50k-sample sets, else 10%% of the training samples)")
    p.add_argument("--samples", type=samples, metavar="N",
                   help="use only the first N training and test samples (quick runs; the same flag as in "
                        "predict and bench)")
    deprecated_alias(p, "--limit", "--samples", type=samples)
    p.add_argument("--max-steps", type=bounded_int(1, "steps"), help="stop each phase after N steps (smoke runs)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from OUT.resume after an interruption")
    p.add_argument("--force", action="store_true", help="replace an earlier checkpoint at --out")
    p.add_argument("--dry-run", action="store_true", help="print the model summary (params, MACs per exit) and stop")
    p.add_argument("--log-every", type=bounded_int(0, "steps"), default=0, metavar="N",
                   help="also print the running loss every N steps (useful in logs, where the bar is hidden)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _check_names(args) -> None:
    """A mistyped --model or --dataset is refused before torch is imported and the data decoded."""
    from edgebranchy.data.datasets import dataset_names
    from edgebranchy.errors import EdgeBranchyError

    if args.dataset not in dataset_names():
        raise EdgeBranchyError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(dataset_names())}")
    if ":" not in args.model and args.plan is None:
        from edgebranchy.models.registry import model_names

        if args.model not in model_names():
            raise EdgeBranchyError(f"unknown model {args.model!r}; choose one of {', '.join(model_names())} "
                                   "or give module:function of your own factory")


def run(args) -> int:
    from edgebranchy.util.talk import say

    say(f"train: checking the options, loading torch and {args.dataset}")
    from edgebranchy.errors import EdgeBranchyError

    if args.plan is not None:
        from edgebranchy.plan.file import model_spec, read_plan

        if args.model is not None or args.depth is not None:
            raise EdgeBranchyError("--plan gives the model: drop --model and --depth")
        plan_doc = read_plan(args.plan)
        args.model, model_args = model_spec(plan_doc)
    else:
        plan_doc = None
        args.model = args.model or "b-lenet"
        model_args = {"depth": args.depth} if args.depth is not None else {}
    _check_names(args)
    from edgebranchy.train.config import RECIPES, TrainConfig

    recipe = RECIPES["paper" if args.paper_recipe else "default"]
    if args.depth is not None and args.model != "b-resnet":
        raise EdgeBranchyError("--depth applies to b-resnet only")
    for name in ("epochs", "lr"):
        if getattr(args, name) <= 0:
            raise EdgeBranchyError(f"--{name} must be positive")
    for name, low in (("baseline_epochs", 0), ("max_steps", 1), ("samples", 1), ("val_size", 1)):
        v = getattr(args, name)
        if v is not None and v < low:
            raise EdgeBranchyError(f"--{name.replace('_', '-')} must be at least {low}, got {v}")
    image = image_options(args) or _plan_image(plan_doc, args.dataset)
    cfg = TrainConfig(
        model=args.model, model_args=model_args, dataset=args.dataset, data_dir=args.data_dir, image=image,
        freeze_backbone=args.freeze_backbone, init_weights=args.init_weights,
        init_skip=[p.strip() for v in (args.init_skip or []) for p in v.split(",") if p.strip()] or None,
        epochs=args.epochs, baseline_epochs=args.baseline_epochs,
        batch_size=recipe["batch_size"] if args.batch_size is None else args.batch_size, lr=args.lr,
        betas=tuple(args.betas) if args.betas else recipe["betas"], exit_weights=args.exit_weights,
        seed=args.seed, val_size=args.val_size, limit=args.samples, max_steps=args.max_steps, device=args.device,
        recipe="paper" if args.paper_recipe else "default", log_every=max(0, args.log_every))
    if len(cfg.betas) != 2:
        raise EdgeBranchyError("--betas takes two numbers")
    if cfg.batch_size <= 0:
        raise EdgeBranchyError("--batch-size must be positive")
    if args.dry_run:
        return _dry_run(cfg)
    from edgebranchy.train.trainer import validate_train_config

    validate_train_config(cfg)
    with _out_lock(args):
        return _train(args, cfg)


def _out_lock(args):
    """The lock of --out (and its OUT.resume), taken by the main process only: torchrun's ranks share one. An
    earlier checkpoint at --out is replaced only with --force; anything else there is refused."""
    import contextlib
    import os

    from edgebranchy.util.locks import output_lock
    from edgebranchy.util.outputs import check_output

    def check() -> None:
        check_output(args.out, [], "checkpoint", force=args.force, data_dirs=[args.data_dir])

    if os.environ.get("RANK", "0") != "0":
        check()
        return contextlib.nullcontext()
    return output_lock(args.out, "--out", check=check)


def _train(args, cfg) -> int:
    from edgebranchy.train.trainer import Trainer

    trainer = Trainer(cfg, args.out, progress=not args.quiet)
    if trainer.dist.main and not args.quiet:
        d = trainer.data
        print(f"training {cfg.model} on {d.name} ({len(d.train)} train / {len(d.val)} validation / "
              f"{len(d.test)} test, from {d.source}); recipe {cfg.recipe}: batch {cfg.batch_size}, "
              f"Adam lr {cfg.lr} betas {tuple(cfg.betas)}, exit weights {trainer.weights}, "
              f"{trainer.dist.world} process(es)"
              + ("; backbone frozen: training the side exit heads only" if cfg.freeze_backbone else ""), flush=True)
    config = trainer.run(resume=args.resume)
    if trainer.dist.main:
        print(_accuracy_table(config))
        print(f"checkpoint: {args.out}")
    return 0


def _accuracy_table(config: dict) -> str:
    v, t = config["validation"], config["test"]
    lines = [f"{'':<22}{'validation':>11}{'test':>9}"]
    for k, (a, b) in enumerate(zip(v["exit_accuracy"], t["exit_accuracy"])):
        name = f"exit {k}" + (" (main)" if k == len(v["exit_accuracy"]) - 1 else "")
        lines.append(f"{name:<22}{a * 100:>10.2f}%{b * 100:>8.2f}%")
    base = "baseline (given model)" if config["train"].get("freeze_backbone") else "baseline (separate)"
    lines.append(f"{base:<22}{v['baseline_accuracy'] * 100:>10.2f}%"
                 f"{t['baseline_accuracy'] * 100:>8.2f}%")
    return "\n".join(lines)


def _dry_run(cfg) -> int:
    from edgebranchy.data import load_dataset
    from edgebranchy.models.registry import build_model
    from edgebranchy.models.summary import format_summary, summarize
    from edgebranchy.train.config import model_args

    data = load_dataset(cfg.dataset, cfg.data_dir, val_size=cfg.val_size, seed=cfg.seed, limit=cfg.limit,
                        image=cfg.image)
    args = model_args(cfg, data)
    net = build_model(cfg.model, args)
    print(format_summary(f"{cfg.model} {args}", summarize(net, data.input_shape)))
    return 0


def _plan_image(plan_doc: dict | None, dataset: str) -> dict | None:
    """No image flags given: an image folder is read as the plan read its own (the plan file records how)."""
    from edgebranchy.cli._images import image_argv
    from edgebranchy.util.talk import say

    recorded = (plan_doc or {}).get("dataset", {})
    if dataset != "imagefolder" or recorded.get("name") != "imagefolder" or not recorded.get("image"):
        return None
    say(f"train: the image folder read as the plan read its own: {' '.join(image_argv(recorded['image']))}")
    return dict(recorded["image"])
