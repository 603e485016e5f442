"""INT8 segments on this CPU: INT8 branchy against FP32 branchy and against the INT8 baseline, with the exits
recalibrated on the INT8 graphs.

Usage (from the repository root; the machine is shared, so nice):
  nice python benchmarks/int8_table.py --checkpoint NAME=CALIBRATED.pt [--checkpoint ...] [--data-dir DIR]
      [--calibration-samples 256] [--samples 300] [--rounds 5] [--work benchmarks/_work/int8]
      [--out benchmarks/results/int8_table.md]

Per checkpoint (calibrated: its FP32 thresholds are the reference):
1. `edgebranchy export --precision int8` (FP32 and INT8 Q/DQ graphs, ONNX Runtime's static quantization on
   --calibration-samples validation samples), into WORK/NAME-int8 (reused when it came from this checkpoint).
2. `edgebranchy calibrate ARTIFACT --in-place --precision int8` in a subprocess (torch-free: the device path) with
   the checkpoint's own target (max accuracy drop), on the INT8 graphs' own entropies; the FP32 calibration stays.
3. Accuracy and exit rates on the whole test split: FP32 branchy and baseline, INT8 branchy with the recalibrated
   thresholds and with the FP32 ones, INT8 baseline.
4. Batch-1 timing on the first --samples test images (one intra-op thread, thread CPU time and wall clock, the
   variants interleaved in every round: benchmarks/call_profile.py's `timed`): baseline and early-exit runner,
   FP32 and INT8, and each segment's bare call in both precisions. Every ratio is within one run.
5. Precision "auto" (runtime/precision_choice.py) measures fp32 against int8 branchy and records its choice in
   the artifact.
With --graph-only NAME (resnet18, mobilenet_v2: torchvision's architectures from edgebranchy.models.tv_compat at
3x64x64, untrained, no exits) only the whole network's graph is timed: FP32 against both INT8 forms the export
writes (ONNX Runtime's and TensorRT's), quantized by export/quantize.py on random inputs. Timing only: no accuracy.
Writes --out (Markdown, the command on its first line) and the figures as JSON beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from call_profile import timed  # noqa: E402  (interleaved rounds, CPU and wall clock)

EB = [sys.executable, "-m", "edgebranchy"]


def cpu_facts() -> dict:
    """The CPU's name and its INT8 instruction-set flags (they decide whether ONNX Runtime's int8 kernels pay)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine(), platform.processor()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    int8 = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512bw", "avx2") if f in flags]
    return {"name": name, "int8_flags": int8, "cpus": os.cpu_count()}


def _run(cmd: list, log: Path) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        r = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}; see {log}")


def prepare(name: str, ckpt: Path, work: Path, calib_n: int, data_dir: str | None) -> Path:
    """The INT8 artifact of `ckpt`, exported and recalibrated on its INT8 graphs (reused when it is this one's)."""
    from edgebranchy.util.files import sha256_file

    art, log = work / f"{name}-int8", work / f"{name}.log"
    sha = sha256_file(ckpt)
    man = art / "manifest.json"
    ok = man.is_file() and json.loads(man.read_text())["source"].get("checkpoint_sha256") == sha
    if not ok or (json.loads(man.read_text()).get("quantization") or {}).get("samples") != calib_n:
        _run(EB + ["export", ckpt, "--out", art, "--precision", "int8", "--calibration-samples", calib_n, "--force"]
             + (["--data-dir", data_dir] if data_dir else []), log)
    m = json.loads(man.read_text())
    if "onnxruntime/int8" not in ((m.get("device_calibration") or {}).get("records") or {}):
        cal = m.get("calibration") or {}
        target = cal.get("target") if cal.get("method") == "max-accuracy-drop" else 1.0
        _run(EB + ["calibrate", art, "--in-place", "--precision", "int8", "--max-accuracy-drop", target]
             + (["--data-dir", data_dir] if data_dir else []), log)
    return art


def accuracy(art, x, y) -> dict:
    """Test-split accuracy and exit rates: fp32, int8 (recalibrated), int8 with the fp32 thresholds; baselines."""
    from edgebranchy.runtime.runner import EarlyExitRunner

    out = {}
    fp32_ts = art.thresholds
    for key, prec, ts in (("fp32", "fp32", None), ("int8", "int8", None), ("int8_fp32_thresholds", "int8", fp32_ts)):
        with EarlyExitRunner(art, options={"precision": prec}, thresholds=ts) as r:
            preds = [r.predict(x[i:i + 256]) for i in range(0, len(x), 256)]
            labels = np.concatenate([p.labels for p in preds])
            exits = np.concatenate([p.exits for p in preds])
            base = np.concatenate([r.baseline(x[i:i + 256]) for i in range(0, len(x), 256)])
            out[key] = {"accuracy": float(np.mean(labels == y)), "baseline_accuracy": float(np.mean(base == y)),
                        "exit_rates": (np.bincount(exits, minlength=r.num_exits) / len(y)).tolist(),
                        "thresholds": list(r.thresholds), "thresholds_source": r.thresholds_source}
    return out


def timing(art, x, rounds: int) -> dict:
    """Batch-1 µs per sample (thread CPU, wall), every variant interleaved in each round."""
    from edgebranchy.runtime.runner import EarlyExitRunner

    runners = {p: EarlyExitRunner(art, options={"precision": p}, form="segments") for p in ("fp32", "int8")}
    singles = [np.ascontiguousarray(x[i:i + 1]) for i in range(len(x))]
    fns = {}
    for p, r in runners.items():
        fns[f"{p} baseline"] = lambda xb, r=r: r.backend.run_baseline(xb)
        fns[f"{p} branchy"] = lambda xb, r=r: r.predict(xb)
    # each segment's bare call on the inputs it gets in the fp32 chain (segment 0: the images)
    feats = {0: singles[:min(len(singles), 100)]}
    b32 = runners["fp32"].backend
    for k in range(1, art.num_exits):
        at = b32._outputs[k - 1].index("features")
        feats[k] = [b32.run_segment(k - 1, f)[at] for f in feats[k - 1]]
    segs = {k: {f"{p} segment {k}": (lambda f, r=r, k=k: r.backend.run_segment(k, f)) for p, r in runners.items()}
            for k in range(art.num_exits)}
    for fn in fns.values():  # warm-up
        for xb in singles[:20]:
            fn(xb)
    for k, group in segs.items():
        for fn in group.values():
            for f in feats[k][:20]:
                fn(f)
    main = timed(fns, singles, rounds)
    seg = {}
    for k, group in segs.items():
        seg.update(timed(group, feats[k], rounds))
    for r in runners.values():
        r.close()
    return {**main, **seg}


def one(name: str, ckpt: Path, a) -> dict:
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.data.splits import load_recorded
    from edgebranchy.runtime.precision_choice import choose_precision

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    path = prepare(name, ckpt, work, a.calibration_samples, a.data_dir)
    art = Artifact.load(path)
    data = load_recorded(art.source.get("dataset"), a.data_dir, what=str(path))
    x, y = art.preprocess(data.test.x), data.test.y
    load_before = os.getloadavg()
    acc = accuracy(art, x, y)
    t = timing(art, x[:a.samples], a.rounds)
    auto = choose_precision(art, x[:min(a.samples, 200)], rounds=a.rounds)
    m = Artifact.load(path).manifest
    return {"name": name, "checkpoint": str(ckpt), "artifact": str(path), "model": m["model"],
            "macs": [s["macs"] for s in m["segments"]], "baseline_macs": m["baseline"]["macs"],
            "quantization": {k: v for k, v in m["quantization"].items() if k != "measured"},
            "int8_checks": [s.get("int8_check") for s in m["segments"]],
            "accuracy": acc, "timing_us": t, "auto": auto, "test_samples": int(len(y)), "timed_samples": a.samples,
            "load_before": load_before, "load_after": os.getloadavg()}


def graph_only(name: str, rounds: int, n: int = 100) -> dict:
    """FP32 against the two INT8 forms of a whole (untrained) network's graph, batch 1, interleaved."""
    import io

    import torch

    from edgebranchy.export.quantize import FLAVOURS, feeds, quantize_graph
    from edgebranchy.models import tv_compat

    net = getattr(tv_compat, name)(num_classes=10).eval()
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.zeros(1, 3, 64, 64),), buf, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    data = buf.getvalue()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((64, 3, 64, 64)).astype(np.float32)
    graphs = {"fp32": data, **{f"int8 ({f})": quantize_graph(data, feeds(["x"], [calib]), name, f) for f in FLAVOURS}}
    import onnxruntime as ort

    def session(g):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(g, so, providers=["CPUExecutionProvider"])

    sessions = {k: session(g) for k, g in graphs.items()}
    xs = [rng.standard_normal((1, 3, 64, 64)).astype(np.float32) for _ in range(n)]
    fns = {k: (lambda xb, s=s: s.run(None, {"x": xb})) for k, s in sessions.items()}
    for fn in fns.values():
        for xb in xs[:10]:
            fn(xb)
    load_before = os.getloadavg()
    t = timed(fns, xs, rounds)
    return {"name": name, "timing_us": t, "samples": n, "load_before": load_before, "load_after": os.getloadavg()}


def _ratio(t: dict, a: str, b: str, clock: int) -> float:
    return t[a][clock] / t[b][clock]


def render_graphs(graphs: list) -> list:
    if not graphs:
        return []
    lines = ["## Whole networks, graph only (timing; untrained weights, no exits, 3x64x64)", "",
             "| network | FP32 ms | INT8 ms, ONNX Runtime form / TensorRT form | INT8 vs FP32: ONNX Runtime form "
             "[wall] | TensorRT form [wall] |", "|---|---|---|---|---|"]
    for g in graphs:
        t = g["timing_us"]
        ort_k, trt_k = "int8 (onnxruntime)", "int8 (tensorrt)"
        lines.append(f"| {g['name']} | {t['fp32'][0] / 1e3:.3f} | {t[ort_k][0] / 1e3:.3f} / {t[trt_k][0] / 1e3:.3f} | "
                     f"**{_ratio(t, 'fp32', ort_k, 0):.2f}x** [{_ratio(t, 'fp32', ort_k, 1):.2f}x] | "
                     f"{_ratio(t, 'fp32', trt_k, 0):.2f}x [{_ratio(t, 'fp32', trt_k, 1):.2f}x] |")
    lines += ["", "Load average (1, 5, 15 min) before / after: " + "; ".join(
        f"{g['name']} {', '.join(f'{v:.2f}' for v in g['load_before'])} / "
        f"{', '.join(f'{v:.2f}' for v in g['load_after'])}" for g in graphs), ""]
    return lines


def render(rows: list, argv: list, cpu: dict, started: str, graphs: list = ()) -> str:
    ort_v = __import__("onnxruntime").__version__
    lines = [f"<!-- command: nice python benchmarks/int8_table.py {' '.join(argv)} -->",
             f"# INT8 segments on this CPU ({started}, {cpu['name']}, {cpu['cpus']} CPUs, onnxruntime {ort_v})", "",
             f"CPU INT8 instruction-set flags: **{', '.join(cpu['int8_flags']) or 'none'}**. ONNX Runtime, one "
             "intra-op thread, batch 1. Times are the calling thread's CPU time (wall clock in brackets); every "
             "ratio is within one run, variants interleaved. **A shared 2-core VM**: other jobs ran throughout "
             "(load averages per network below). INT8 graphs: ONNX Runtime's static Q/DQ quantization after "
             "`quant_pre_process` (uint8 activations, int8 per-channel weights; the exit heads' entropy in FP32); "
             "INT8 thresholds recalibrated on the INT8 graphs' own entropies with the checkpoint's accuracy target.",
             "", "| network | MACs M (segments) | acc. % FP32 baseline / branchy | acc. % INT8 baseline / branchy "
             "(recal.) / branchy (FP32 T) | exit % FP32 / INT8 | b1 ms FP32 base / branchy | b1 ms INT8 base / "
             "branchy | INT8 branchy vs FP32 branchy [wall] | INT8 branchy vs INT8 baseline [wall] | INT8 vs FP32 "
             "per segment | auto |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc, t = r["accuracy"], r["timing_us"]
        f32, i8, i8f = acc["fp32"], acc["int8"], acc["int8_fp32_thresholds"]
        pct = lambda v: f"{v * 100:.2f}"  # noqa: E731
        segs = ", ".join(f"{_ratio(t, f'fp32 segment {k}', f'int8 segment {k}', 0):.2f}x"
                         for k in range(len(r["macs"])))
        lines.append(
            f"| {r['name']} | {', '.join(f'{m / 1e6:.1f}' for m in r['macs'])} | {pct(f32['baseline_accuracy'])} / "
            f"{pct(f32['accuracy'])} | {pct(i8['baseline_accuracy'])} / {pct(i8['accuracy'])} / "
            f"{pct(i8f['accuracy'])} | {', '.join(f'{e * 100:.1f}' for e in f32['exit_rates'])} / "
            f"{', '.join(f'{e * 100:.1f}' for e in i8['exit_rates'])} | {t['fp32 baseline'][0] / 1e3:.3f} / "
            f"{t['fp32 branchy'][0] / 1e3:.3f} | {t['int8 baseline'][0] / 1e3:.3f} / {t['int8 branchy'][0] / 1e3:.3f} | "
            f"**{_ratio(t, 'fp32 branchy', 'int8 branchy', 0):.2f}x** [{_ratio(t, 'fp32 branchy', 'int8 branchy', 1):.2f}x] | "
            f"**{_ratio(t, 'int8 baseline', 'int8 branchy', 0):.2f}x** [{_ratio(t, 'int8 baseline', 'int8 branchy', 1):.2f}x] | "
            f"{segs} | {r['auto']['choice']} |")
    lines += [""] + render_graphs(list(graphs)) + ["## Per network", ""]
    for r in rows:
        acc, t = r["accuracy"], r["timing_us"]
        q = r["quantization"]
        lines += [f"### {r['name']}", "",
                  f"- checkpoint {r['checkpoint']}; model {json.dumps(r['model'])}; artifact {r['artifact']}",
                  f"- quantization: {q['method']} ({q['format']}), {q['samples']} {q['samples_split']} samples "
                  f"(sha256 {q['samples_sha256'][:16]}...); export check per segment (top-1 agreement with FP32 on "
                  "those samples): " + ", ".join(f"{c['top1_agreement'] * 100:.1f}%" for c in r["int8_checks"] if c),
                  f"- thresholds: FP32 {', '.join(f'{v:.4g}' for v in acc['fp32']['thresholds'])}; INT8 "
                  f"{', '.join(f'{v:.4g}' for v in acc['int8']['thresholds'])} ({acc['int8']['thresholds_source']})",
                  f"- accuracy on {r['test_samples']} test samples: FP32 branchy {acc['fp32']['accuracy'] * 100:.2f}%, "
                  f"INT8 branchy recalibrated {acc['int8']['accuracy'] * 100:.2f}% "
                  f"({(acc['int8']['accuracy'] - acc['fp32']['accuracy']) * 100:+.2f} points), INT8 with the FP32 "
                  f"thresholds {acc['int8_fp32_thresholds']['accuracy'] * 100:.2f}% (exits "
                  f"{', '.join(f'{e * 100:.1f}%' for e in acc['int8_fp32_thresholds']['exit_rates'])})",
                  f"- load average (1, 5, 15 min) before / after: {', '.join(f'{v:.2f}' for v in r['load_before'])} / "
                  f"{', '.join(f'{v:.2f}' for v in r['load_after'])}",
                  f"- batch 1 on {r['timed_samples']} test samples, µs per sample [cpu, wall]: "
                  + "; ".join(f"{k} {c:.1f} [{w:.1f}]" for k, (c, w) in t.items()),
                  f"- precision auto: fp32 {r['auto']['fp32_us']:.1f} us, int8 {r['auto']['int8_us']:.1f} us per "
                  f"sample (wall) -> **{r['auto']['choice']}**", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help="a calibrated checkpoint (repeatable)")
    ap.add_argument("--graph-only", action="append", default=[], choices=["resnet18", "mobilenet_v2"],
                    help="also time this whole network's graph, FP32 against both INT8 forms (repeatable)")
    ap.add_argument("--data-dir")
    ap.add_argument("--calibration-samples", type=int, default=256)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", default=str(HERE / "_work" / "int8"))
    ap.add_argument("--out", default=str(HERE / "results" / "int8_table.md"))
    a = ap.parse_args()
    from edgebranchy.util.files import atomic_write_json, atomic_write_text

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = cpu_facts()
    rows = []
    for spec in a.checkpoint:
        name, _, path = spec.partition("=")
        rows.append(one(name, Path(path), a))
        print(f"{name}: done", flush=True)
    graphs = [graph_only(name, a.rounds) for name in a.graph_only]
    text = render(rows, sys.argv[1:], cpu, started, graphs)
    atomic_write_text(Path(a.out), text)
    atomic_write_json(Path(a.out).with_suffix(".json"), {"argv": sys.argv[1:], "started": started, "cpu": cpu,
                                                          "rows": rows, "graphs": graphs})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
