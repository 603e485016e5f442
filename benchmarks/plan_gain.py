"""Planned exit placement against the paper's, on B-AlexNet and B-ResNet (Fashion-MNIST), measured on ONNX Runtime
at batch 1.

Usage (from the repository root; the machine is shared, so nice):
  nice python benchmarks/plan_gain.py --work DIR [--networks b-alexnet,b-resnet,resnet18] [--checkpoint NET=PATH ...]
      [--data-samples N] [--max-accuracy-drop 1.0] [--samples 1000] [--rounds 7] [--head-epochs 3] [--train-epochs 2]

Networks: the zoo B-AlexNet (reference placement: the paper's, "7" and "8" on its backbone), the zoo B-ResNet at
depth 20 (reference: the zoo's, after "stem" and "layer1" on its backbone) and Table II's ResNet-18 (tv_compat,
with a one-channel stem for Fashion-MNIST; reference: after layer1 and layer2).
1. The network with its reference placement, jointly trained by `edgebranchy train`, is --checkpoint NET=PATH or
   trained into WORK/NET/NET.pt with --train-args.
2. Its separately trained baseline (the checkpoint's main path) is the backbone; `edgebranchy plan ...
   --init-weights CK` chooses the exits on it (timed: the plan's seconds).
3. Two networks are trained from the plan file with the backbone frozen (`train --plan --freeze-backbone`): the
   planned placement, and the reference placement with the same heads: only the placement differs.
4. The three checkpoints are calibrated at the same --max-accuracy-drop from their own final exit (MACs as the
   cost, the same for all), exported, and timed in the same interleaved rounds (baseline and early-exit runner
   per network, batch 1, ONNX Runtime, one intra-op thread, thread CPU clock): gain = baseline / runner.
Writes --out (Markdown, the command on its first line) and the figures as JSON beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import paper_table as pt  # noqa: E402  (timed, accuracy_on_test)

#: per network: the plan's model, the reference placement (a zoo network's: backbones.PAPER_POINTS), the zoo/Table
#: II network trained with it, its backbone factory, its input and the model arguments (`args`: to `plan` as
#: --NAME VALUE, to the backbone factory as keywords; `train --plan` has them from the plan file)
NETWORKS = {
    "b-alexnet": {"plan": "b-alexnet", "points": ["7", "8"], "train": ["--model", "b-alexnet"],
                  "backbone": "edgebranchy.models.backbones:alexnet", "shape": (1, 10, 28)},
    "b-resnet": {"plan": "b-resnet", "points": ["stem", "layer1"], "train": ["--model", "b-resnet", "--depth", "20"],
                 "backbone": "edgebranchy.models.backbones:resnet", "shape": (1, 10, 28), "args": {"depth": 20}},
    # Table II's ResNet-18 (torchvision's, tv_compat) with a one-channel stem for Fashion-MNIST, exits as Table II
    "resnet18": {"plan": "plan_gain:resnet18_gray", "points": ["layer1", "layer2"],
                 "train": ["--model", "plan_gain:resnet18_gray_branchy"], "backbone": "plan_gain:resnet18_gray",
                 "shape": (1, 10, 28)},
}


def resnet18_gray(num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
    """torchvision's ResNet-18 (edgebranchy.models.tv_compat) with an `in_channels` stem: a plain nn.Module."""
    from torch import nn

    from edgebranchy.models.tv_compat import resnet18

    m = resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
    return m


def resnet18_gray_branchy(num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
    """Table II's placement (after layer1 and layer2, the default head) on resnet18_gray."""
    from edgebranchy.models import from_model

    return from_model(resnet18_gray(num_classes, in_channels, input_size), NETWORKS["resnet18"]["points"],
                      (in_channels, input_size, input_size), num_classes)


def cli(*args: str, log) -> float:
    """Run `edgebranchy ARGS` (niced, like this script); its wall seconds."""
    cmd = [sys.executable, "-m", "edgebranchy", *map(str, args)]
    log("$ " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def _backbone(spec: dict):
    import importlib

    mod, fn = spec["backbone"].split(":")
    c, n, size = spec["shape"]
    return getattr(importlib.import_module(mod), fn)(in_channels=c, num_classes=n, input_size=size,
                                                      **spec.get("args", {}))


def model_flags(spec: dict) -> list[str]:
    """The network's model arguments as `plan` flags (--depth 20)."""
    return [x for k, v in spec.get("args", {}).items() for x in (f"--{k.replace('_', '-')}", str(v))]


def prepare(net: str, a, log) -> dict:
    """Checkpoint paths per row: the reference network as trained (zoo B-AlexNet / Table II ResNet-18), the planned
    and the reference placement with the plan's heads on the same frozen backbone; the plan's facts."""
    import torch

    from edgebranchy.plan.run import _load_weights

    spec = NETWORKS[net]
    w = Path(a.work) / net
    w.mkdir(parents=True, exist_ok=True)
    zoo = Path(a.checkpoints[net]) if net in a.checkpoints else w / f"{net}.pt"
    common = ["--samples", str(a.data_samples)] if a.data_samples else []
    if not zoo.is_file():
        cli("train", *spec["train"], "--dataset", "fashion-mnist", "--out", zoo, "--quiet", *common,
            *a.train_args.split(), log=log)
    back = _backbone(spec)
    _load_weights(back, str(zoo))
    torch.save(back.state_dict(), w / "backbone.pt")
    plan = w / "plan.json"
    secs = cli("plan", spec["plan"], *model_flags(spec), "--init-weights", zoo, "--max-accuracy-drop", a.max_accuracy_drop,
               "--reference", ",".join(spec["points"]), "--head-epochs", a.head_epochs, "--rounds", a.rounds,
               "--cache", w / "plan-cache", "--out", plan, "--force", *common, log=log)
    doc = json.loads(plan.read_text())
    shapes = {c["name"]: c["feature_shape"] for c in doc["candidates"]}
    ref = dict(doc, split_points=spec["points"], head_shapes=[shapes[p] for p in spec["points"]])
    (w / "reference-plan.json").write_text(json.dumps(ref))
    rows = {f"{net} as trained (reference placement {', '.join(spec['points'])}, its heads, joint)": zoo}
    for name, p in (("planned", plan), ("reference placement, plan heads", w / "reference-plan.json")):
        ck = w / f"{p.stem}.pt"
        if not ck.is_file():
            cli("train", "--plan", p, "--freeze-backbone", "--init-weights", w / "backbone.pt", "--dataset",
                "fashion-mnist", "--epochs", a.train_epochs, "--out", ck, "--quiet", *common, log=log)
        rows[f"{name} ({', '.join(json.loads(p.read_text())['split_points'])})"] = ck
    return {"rows": rows, "plan": doc, "plan_seconds": secs}


def artifact(ck: Path, work: Path, a, log) -> Path:
    import shutil

    from edgebranchy.calibration import calibrate_checkpoint
    from edgebranchy.export.onnx import export_checkpoint

    cal = work / f"{ck.stem}-cal.pt"
    shutil.copy(ck, cal)
    calibrate_checkpoint(cal, max_accuracy_drop=float(a.max_accuracy_drop), log=lambda s: None)
    art = work / f"{ck.stem}-artifact"
    export_checkpoint(cal, art, force=True, single_graph=False, log=lambda s: None)
    log(f"{ck.stem}: calibrated and exported to {art}")
    return art


def measure(arts: dict, a, log) -> dict:
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.data import load_dataset
    from edgebranchy.runtime.runner import EarlyExitRunner

    data = load_dataset("fashion-mnist", limit=a.test_samples)
    out, fns, runners = {}, {}, []
    for name, d in arts.items():
        art = Artifact.load(d)
        seg = EarlyExitRunner(art, form="segments")
        runners.append(seg)
        xt = art.preprocess(data.test.x)
        r = pt.accuracy_on_test(seg, xt, data.test.y)
        r.update(thresholds=seg.thresholds, validation=(art.manifest.get("calibration") or {}).get("validation"))
        singles = [np.ascontiguousarray(xt[i:i + 1]) for i in range(a.samples)]
        for xb in singles[:30]:
            seg.predict(xb), seg.baseline(xb)
        fns[f"{name}|baseline"] = (lambda i, s=seg, x=singles: s.baseline(x[i]))
        fns[f"{name}|branchy"] = (lambda i, s=seg, x=singles: s.predict(x[i]))
        out[name] = r
    log(f"timing {len(fns)} variants, {a.rounds} interleaved rounds of {a.samples} samples at batch 1")
    load0 = os.getloadavg()
    t = pt.timed(fns, list(range(a.samples)), a.rounds)
    for name, r in out.items():
        r["us"] = {c: {"baseline": t[c][f"{name}|baseline"], "branchy": t[c][f"{name}|branchy"]} for c in pt.CLOCKS}
        r["gain"] = {c: r["us"][c]["baseline"] / r["us"][c]["branchy"] for c in pt.CLOCKS}
    for s in runners:
        s.close()
    return {"rows": out, "load": [load0, os.getloadavg()]}


def render(net: str, res: dict, prep: dict, a) -> str:
    p = prep["plan"]
    L = [f"## {net} on Fashion-MNIST ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
         f"A shared 2-core VM, loaded by other jobs throughout (load average {res['load'][0][0]:.1f} before the timing, "
         f"{res['load'][1][0]:.1f} after). Gains are baseline / early-exit runner in the same interleaved rounds, "
         f"batch 1, ONNX Runtime with one intra-op thread, on the thread's CPU clock (wall clock in brackets), "
         f"{a.samples} test samples x {a.rounds} rounds. Every network is calibrated at <= {a.max_accuracy_drop} "
         f"points below its own final exit on the validation split (MACs as the cost); accuracy on the first "
         f"{a.test_samples} test samples.",
         "",
         f"`edgebranchy plan {' '.join([NETWORKS[net]['plan'], *model_flags(NETWORKS[net])])}` took **{prep['plan_seconds']:.0f} s** (cold cache; {len(p['candidates'])} "
         f"candidates, {p['head_training']['epochs']} head epochs on {p['head_training']['samples']} samples, costs: "
         f"{p['costs']['source']}); it chose exits after **{', '.join(p['split_points'])}** (expected "
         f"{p['expected']['speedup']:.2f}x at {p['expected']['accuracy'] * 100:.2f}% on validation; the reference "
         + (f"{p['reference']['speedup']:.2f}x" if p.get("reference") and p["reference"].get("speedup") else "n/a")
         + " with the same heads).", "",
         "| network | thresholds | test accuracy (baseline / early exit) | exits % | baseline µs | early exit µs | gain |",
         "|---|---|---|---|---|---|---|"]
    for name, r in res["rows"].items():
        u = r["us"]["cpu"]
        L.append(f"| {name} | {', '.join(f'{t:.3g}' for t in r['thresholds'])} | {r['acc_baseline'] * 100:.2f}% / "
                 f"{r['acc_branchy'] * 100:.2f}% | {' / '.join(f'{v:.0f}' for v in r['exit_pct'])} | "
                 f"{u['baseline']:.0f} | {u['branchy']:.0f} | **{r['gain']['cpu']:.2f}x** ({r['gain']['wall']:.2f}x) |")
    L += ["", "Candidates the plan measured (prefix = the network up to the point; µs per call at batch 1):", "",
          "| point | one tensor | features | prefix µs | of model | head µs | head accuracy (val) |", "|---|---|---|---|---|---|---|"]
    base = p["costs"]["baseline"]
    for c in p["candidates"]:
        L.append(f"| {c['name']} | {'yes' if c['single_tensor'] else 'no'} | {'x'.join(map(str, c['feature_shape']))} | "
                 f"{c['prefix_cost']:.0f} | {c['prefix_cost'] / base:.0%} | {c['head_cost']:.0f} | "
                 f"{c['head_accuracy'] * 100:.2f}% |")
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="b-alexnet,resnet18")
    ap.add_argument("--work", default=str(ROOT / "benchmarks/_work/plan_gain"))
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NET=PATH",
                    help="the network as trained with its reference placement (default: trained into WORK/NET)")
    ap.add_argument("--train-args", default="--epochs 10", help="`train` arguments when it trains that network")
    ap.add_argument("--data-samples", type=int, help="--samples for plan and train --plan (the checkpoint's split)")
    ap.add_argument("--max-accuracy-drop", default="1.0")
    ap.add_argument("--head-epochs", default="3")
    ap.add_argument("--train-epochs", default="2", help="epochs of the heads in `train --plan --freeze-backbone`")
    ap.add_argument("--samples", type=int, default=1000, help="test samples timed at batch 1")
    ap.add_argument("--test-samples", type=int, default=5000, help="test samples the accuracy is measured on")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/plan.md"))
    a = ap.parse_args()
    a.checkpoints = dict(c.split("=", 1) for c in a.checkpoint)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ["EDGEBRANCHY_TRUST_MODEL_CODE"] = "plan_gain"
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    md = [f"<!-- command: python benchmarks/plan_gain.py {' '.join(sys.argv[1:])} -->",
          "# Planned exit placement against the reference placement, measured on this CPU", ""]
    record = {"argv": sys.argv[1:], "networks": {}}
    for net in [n.strip() for n in a.networks.split(",") if n.strip()]:
        prep = prepare(net, a, log)
        arts = {name: artifact(ck, Path(a.work) / net, a, log) for name, ck in prep["rows"].items()}
        res = measure(arts, a, log)
        md.append(render(net, res, prep, a))
        record["networks"][net] = {"plan": prep["plan"], "plan_seconds": prep["plan_seconds"], **res}
    from edgebranchy.util.files import atomic_write_json, atomic_write_text

    atomic_write_text(a.out, "\n".join(md))
    atomic_write_json(Path(a.out).with_suffix(".json"), record)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
