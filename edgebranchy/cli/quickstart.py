"""`edgebranchy quickstart`: train, calibrate, export, bench and report on this machine, in one go."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import bounded_int, samples, trials

ORDER = 1


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "quickstart", help="the whole pipeline on this CPU in two to three minutes",
        description="Train B-LeNet on a dataset available offline (Fashion-MNIST when installed, else "
                    "scikit-learn's digits), calibrate its exit threshold for at most 0.5 points of accuracy "
                    "drop, export per-segment ONNX graphs, benchmark baseline versus BranchyNet on ONNX Runtime "
                    "on this CPU (with the energy estimate of the detected profile unless a sensor is readable), "
                    "and write the report. Fewer epochs than the full recipe: it is a demonstration; "
                    "`edgebranchy train --epochs 10` gives the full accuracy. A recorded run took 97 s on a 2-core "
                    "x86 VM, 78 s of it training (benchmarks/results/quickstart.md).")
    p.add_argument("--out", default="runs/quickstart", help="directory for every file the run writes")
    p.add_argument("--dataset", choices=["auto", "fashion-mnist", "digits", "synthetic"], default="auto",
                   help="auto: Fashion-MNIST when installed, else scikit-learn's digits")
    p.add_argument("--epochs", type=bounded_int(1, "epochs"), help="epochs PER PHASE, as in train: the baseline phase and the joint phase each run --epochs "
                        "(default: 2 on Fashion-MNIST, 30 on digits)")
    p.add_argument("--trials", type=trials, default=5, help="bench trials per variant (interleaved)")
    p.add_argument("--samples", type=samples, default=1000, metavar="N", help="first N test samples per bench pass")
    p.add_argument("--profile", default="auto", help="device profile name or TOML path; 'auto' detects it")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier quickstart in OUT: its outputs are set aside while the new ones are "
                        "made, removed once the run is done, put back if it fails or is interrupted (other files "
                        "there are never touched; a folder that is not a quickstart's is never replaced)")
    return p


OUTPUTS = (("b-lenet.pt", "checkpoint"), ("artifact", "artifact"), ("results.json", "results"),
           ("results.json.jsonl", "trial-log"), ("report", "report"))
#: files a run may leave beside its outputs (an interrupted training's state)
SIDE_FILES = ("b-lenet.pt.resume", "results.json.latencies.npz")
#: where the outputs of an earlier quickstart wait while a forced run makes new ones
EARLIER = ".quickstart-earlier"



def _is_earlier_quickstart(out) -> bool:
    """`out` is a quickstart's folder: it has the marker, or (written before the marker existed) holds
    nothing but quickstart outputs, each of its kind."""
    from edgebranchy.util.kinds import QUICKSTART_MARKER, what_is

    found = what_is(out)
    if found == "quickstart":
        return True
    if found != "other-dir":
        return False
    kinds = dict(OUTPUTS)
    names = {p.name for p in out.iterdir()}
    known = set(kinds) | set(SIDE_FILES) | {QUICKSTART_MARKER, EARLIER}
    return bool(names) and names <= known and all(
        what_is(out / n) == kinds[n] for n in names if n in kinds)


def _check_outputs(out, force: bool) -> bool:
    """Every file the run will write, checked before training. An earlier quickstart's folder is replaced
    with --force (True is returned: remove its outputs first); anything else there is never touched."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.kinds import describe, what_is
    from edgebranchy.util.outputs import check_output

    found = what_is(out)
    if _is_earlier_quickstart(out):
        if not force:
            raise EdgeBranchyError(f"--out {out} holds an earlier quickstart; pass --force to replace it")
        return True
    if found not in ("missing", "other-dir"):
        raise EdgeBranchyError(f"--out {out} is {describe(found)}, not a folder for a quickstart run; "
                               "choose another")
    for name, kind in OUTPUTS:
        check_output(out / name, [], kind, force=force)
    return False


def _names() -> list:
    from edgebranchy.util.kinds import QUICKSTART_MARKER

    return [n for n, _ in OUTPUTS] + list(SIDE_FILES) + [QUICKSTART_MARKER]


def _remove(p) -> None:
    import shutil

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _set_aside(out):
    """Move an earlier quickstart's outputs (only those: other files in the folder stay) into OUT/.quickstart-earlier;
    returns that folder."""
    import os

    from edgebranchy.util.signals import uninterrupted

    keep = out / EARLIER
    _remove(keep)  # left by a forced run that was killed: the outputs at OUT are the complete ones
    keep.mkdir()
    with uninterrupted():
        for name in _names():
            if (out / name).exists() or (out / name).is_symlink():
                os.replace(out / name, keep / name)
    return keep


def _put_back(out, keep) -> None:
    """A forced run that failed: its partial outputs go, the earlier ones come back."""
    import os

    from edgebranchy.util.signals import uninterrupted

    with uninterrupted():
        for name in _names():
            _remove(out / name)
            if (keep / name).exists() or (keep / name).is_symlink():
                os.replace(keep / name, out / name)
    _remove(keep)


def _write_marker(out, state: str) -> None:
    import time

    from edgebranchy.util.files import atomic_write_json
    from edgebranchy.util.kinds import QUICKSTART_MARKER, QUICKSTART_SCHEMA

    atomic_write_json(out / QUICKSTART_MARKER, {"schema": QUICKSTART_SCHEMA, "state": state,
                                                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                "outputs": [n for n, _ in OUTPUTS]})


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

    from edgebranchy.util.talk import say

    say(f"quickstart: checking {args.out}, loading torch and ONNX")

    import edgebranchy.export.onnx  # noqa: F401  (torch and ONNX now: a board without them is told at once)
    from edgebranchy.device.detection import resolve_profile
    from edgebranchy.util.locks import output_lock

    t_all = time.perf_counter()
    out = Path(args.out)
    with output_lock(out, "--out", check=lambda: _check_outputs(out, args.force)):
        replace = _check_outputs(out, args.force)
        resolve_profile(args.profile)  # an unknown profile is refused now, not after training
        keep = None
        if replace:
            print(f"--force: replacing the earlier quickstart in {out} once this run is done", flush=True)
            keep = _set_aside(out)
        try:
            _steps(args, out, t_all)
        except BaseException:
            if keep is not None:
                _put_back(out, keep)
            raise
        if keep is not None:
            _remove(keep)
    return 0


def _steps(args, out, t_all) -> None:
    """Train, calibrate, export, bench and report into `out`."""
    import time

    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.session import run_bench
    from edgebranchy.calibration import calibrate_checkpoint
    from edgebranchy.exits.table import calibration_table
    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.report import build_report
    from edgebranchy.train.trainer import TrainConfig, Trainer

    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, "running")  # from now on the folder is recognisably a quickstart's

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
    print(calibration_table(rec["validation"], rec["test"], rec["thresholds"], cost_source=rec.get("cost_source")))

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
    from edgebranchy.report.verdict import verdict_lines

    for line in verdict_lines(doc["runs"][0]):  # what the run says, and what to watch out for
        print(line)

    step(5, "writing the report")
    files = build_report([results], out / "report")
    print(f"report: {files.html}\n        {files.markdown}")
    _write_marker(out, "done")
    print(f"\ndone in {time.perf_counter() - t_all:.0f} s. Files in {out}/: b-lenet.pt (checkpoint), artifact/ "
          "(what a device needs), results.json (+ .jsonl trial log), report/")
