"""`edgebranchy quickstart`: train, calibrate, export, bench and report on this machine, in one go."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import positive_int

ORDER = 1


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "quickstart", help="the whole pipeline on this CPU in about two minutes",
        description="Train B-LeNet on a dataset available offline (Fashion-MNIST when installed, else "
                    "scikit-learn's digits), calibrate its exit threshold for at most 0.5 points of accuracy "
                    "drop, export per-segment ONNX graphs, benchmark baseline versus BranchyNet on ONNX Runtime "
                    "on this CPU (with the energy estimate of the detected profile unless a sensor is readable), "
                    "and write the report. Fewer epochs than the full recipe: it is a demonstration; "
                    "`edgebranchy train --epochs 10` gives the full accuracy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/quickstart", help="directory for every file the run writes")
    p.add_argument("--dataset", choices=["auto", "fashion-mnist", "digits", "synthetic"], default="auto")
    p.add_argument("--epochs", type=positive_int, help="epochs per phase (default: 2 on Fashion-MNIST, 30 on digits)")
    p.add_argument("--trials", type=positive_int, default=5)
    p.add_argument("--samples", type=positive_int, default=1000, help="test samples per bench pass")
    p.add_argument("--profile", default="auto")
    p.add_argument("--force", action="store_true",
                   help="replace the outputs of an earlier quickstart in OUT (never other files)")
    return p


OUTPUTS = (("b-lenet.pt", "checkpoint"), ("artifact", "artifact"), ("results.json", "results"),
           ("results.json.jsonl", "trial-log"), ("report", "report"))


def _check_outputs(out, force: bool) -> None:
    """Every file the run will write, checked before training: only an earlier quickstart's, with --force."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.kinds import what_is
    from edgebranchy.util.outputs import check_output

    if what_is(out) not in ("missing", "other-dir"):
        raise EdgeBranchyError(f"--out {out} is not a folder for a quickstart run ({what_is(out)}); choose another")
    for name, kind in OUTPUTS:
        check_output(out / name, [], kind, force=force)


def _pick_dataset(choice: str):
    from edgebranchy.data import load_dataset
    from edgebranchy.errors import EdgeBranchyError

    if choice != "auto":
        return load_dataset(choice), f"asked for with --dataset {choice}"
    try:
        return load_dataset("fashion-mnist"), "Fashion-MNIST is installed on this machine"
    except EdgeBranchyError as e:
        return load_dataset("digits"), (f"Fashion-MNIST is not installed ({e}); using scikit-learn's 8x8 digits, "
                                        "which ship with scikit-learn")


def run(args) -> int:
    import time
    from pathlib import Path

    from edgebranchy.exits.table import calibration_table
    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.measure.bench import BenchConfig, run_bench
    from edgebranchy.report import build_report
    from edgebranchy.train.calibration import calibrate_checkpoint
    from edgebranchy.train.trainer import TrainConfig, Trainer

    t_all = time.perf_counter()
    out = Path(args.out)
    _check_outputs(out, args.force)
    from edgebranchy.measure.profiles import resolve_profile

    resolve_profile(args.profile)  # an unknown profile is refused now, not after training
    out.mkdir(parents=True, exist_ok=True)

    def step(n: int, text: str) -> None:
        print(f"\n[{n}/5] {text}  (+{time.perf_counter() - t_all:.0f} s)", flush=True)

    data, why = _pick_dataset(args.dataset)
    small = len(data.train) < 10000
    epochs = args.epochs or (30 if small else 2)
    step(1, f"training b-lenet on {data.name}: {why}; {epochs} baseline + {epochs} joint epochs "
            f"(the full Fashion-MNIST recipe is 10 + 10)")
    ckpt = out / "b-lenet.pt"
    cfg = TrainConfig(model="b-lenet", dataset=data.name, epochs=epochs, baseline_epochs=epochs,
                      batch_size=64 if small else 128)
    config = Trainer(cfg, ckpt, data=data).run()
    acc = config["test"]
    print("test accuracy: " + ", ".join(f"exit {k} {a * 100:.2f}%" for k, a in enumerate(acc["exit_accuracy"]))
          + f", separately trained baseline {acc['baseline_accuracy'] * 100:.2f}%")

    step(2, "calibrating the exit threshold on the validation split (at most 0.5 points below the final exit)")
    rec = calibrate_checkpoint(ckpt, max_accuracy_drop=0.5, data=data, log=lambda s: print(s, flush=True))
    print(calibration_table(rec["validation"], rec["test"], rec["thresholds"]))

    step(3, "exporting per-segment ONNX graphs (checked against PyTorch on validation samples)")
    artifact = out / "artifact"
    samples = data.val.x_float(data.norm)[:64]
    export_checkpoint(ckpt, artifact, samples=samples, force=args.force)

    step(4, f"benchmarking baseline vs branchy at batch 1 on ONNX Runtime, {args.trials} interleaved trials each")
    results = out / "results.json"
    doc = run_bench(BenchConfig(artifact=str(artifact), out=str(results), backend="onnxruntime",
                                profile=args.profile, dataset=data.name, batch_size=1, samples=args.samples,
                                trials=args.trials, warmup=100, min_window_s=1.0, idle_s=2.0, force=args.force),
                    log=lambda s: print(s, flush=True))
    r = doc["runs"][0]
    b, e = r["variants"]["baseline"], r["variants"]["branchy"]
    print(f"baseline p50 {b['latency_ms']['p50']:.3f} ms, branchy p50 {e['latency_ms']['p50']:.3f} ms: "
          f"{b['latency_ms']['p50'] / e['latency_ms']['p50']:.2f}x; energy {e['energy']['kind']} "
          f"({e['energy']['source']}): {b['energy']['per_inference_mj']['median']:.3f} -> "
          f"{e['energy']['per_inference_mj']['median']:.3f} mJ per inference")

    step(5, "writing the report")
    files = build_report([results], out / "report")
    print(f"report: {files.html}\n        {files.markdown}")
    print(f"\ndone in {time.perf_counter() - t_all:.0f} s. Files in {out}/: b-lenet.pt (checkpoint), artifact/ "
          "(what a device needs), results.json (+ .jsonl trial log), report/")
    return 0
