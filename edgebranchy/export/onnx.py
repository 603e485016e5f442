"""Export a checkpoint as per-segment ONNX graphs with the entropy computed in the graph (needs torch, onnx)."""
from __future__ import annotations

import copy
import io
import platform
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.export.checks import check_classes, refuse_non_finite
from edgebranchy.artifact.manifest import MANIFEST, build_manifest, segment_io_names, validate_manifest, write_artifact_dir
from edgebranchy.util.files import atomic_write_bytes, atomic_write_json, sha256_file
from edgebranchy.vocab import check_precision

OPSET = 17
TOL = {"fp32": 1e-3, "fp16": 5e-2}  # max abs difference, relative to max(1, |reference|)


def _flat(t) -> list:
    """The tensors of a (possibly nested) tuple, in order: how the exporter numbers graph inputs and outputs."""
    return [v for e in t for v in _flat(e)] if isinstance(t, (tuple, list)) else [t]


def _export(module, example, out_names: list[str], in_names: list[str] | None = None) -> bytes:
    """ONNX bytes of `module` on `example` (a tensor, or the tuple of tensors a from_model stage passes on)."""
    import torch

    module.eval()  # the TorchScript exporter restores training flags recursively: eval the wrapper itself
    buf = io.BytesIO()
    in_names = in_names or ["x"]
    dyn = {n: {0: "N"} for n in in_names + out_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=in_names, output_names=out_names,
                          dynamic_axes=dyn, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return buf.getvalue()


def _check_and_simplify(data: bytes, what: str, simplify: bool) -> tuple[bytes, bool, str | None]:
    import onnx

    model = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise EdgeBranchyError(f"{what}: exported graph fails onnx.checker: {e}") from None
    if not simplify:
        return data, False, "simplification disabled (--no-simplify)"
    try:
        from onnxsim import simplify as onnxsim_simplify

        simp, ok = onnxsim_simplify(model)
        if not ok:
            raise RuntimeError("onnxsim's own check of the simplified graph failed")
        onnx.checker.check_model(simp, full_check=True)
        return simp.SerializeToString(), True, None
    except ImportError:
        return data, False, "onnxsim is not installed"
    except Exception as e:  # noqa: BLE001 - any simplifier failure is recorded, the graph stays unsimplified
        return data, False, f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def _ort_run(data: bytes, x: np.ndarray | dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, x if isinstance(x, dict) else {"x": x})


def _max_diff(got: list[np.ndarray], ref: list[np.ndarray], what: str) -> float:
    worst = 0.0
    for g, r in zip(got, ref):
        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            raise EdgeBranchyError(f"{what}: ONNX output shape {g.shape} differs from PyTorch's {r.shape}")
        # NaN - NaN is NaN and max() of NaNs compares false against any tolerance: check explicitly
        if not (np.isfinite(g).all() and np.isfinite(r).all()):
            raise EdgeBranchyError(f"{what}: non-finite outputs (NaN or inf) on the validation samples; "
                                   "the numerical check cannot pass (damaged weights?)")
        d = float(np.max(np.abs(g - r) / np.maximum(1.0, np.abs(r)))) if g.size else 0.0
        worst = max(worst, d)
    return worst


@dataclass
class _Plan:
    """What an export writes, decided before anything is written: the networks, the kept exits and their segment
    graphs per precision, the examples that trace them and the samples the numerical check compares on."""

    checkpoint: str | Path
    cfg: dict
    net: Any
    baseline: Any
    keep: list[int]
    seg_macs: list[float]
    baseline_macs: float
    graphs: dict[str, list]        # precision -> one segment graph per kept exit
    normalize: bool
    temps: list[float]
    thresholds: list[float] | None
    x: Any                         # torch tensor: the check samples, or one zero image
    checked: int                   # samples compared (0: the check was skipped)
    calib: np.ndarray | None = None  # --precision int8: the quantizer's calibration samples (validation split)

    @property
    def precisions(self) -> list[str]:
        return list(self.graphs) + (["int8"] if self.calib is not None else [])


def export_checkpoint(checkpoint: str | Path, out: str | Path, precision: str = "fp32", simplify: bool = True,
                      samples: np.ndarray | None = None, check_samples: int = 64, force: bool = False,
                      normalize_entropy: bool | None = None, prune: bool = True, data_dir: str | None = None,
                      single_graph: bool = True, calibration_samples: int = 256,
                      log: Callable[[str], None] = print) -> Path:
    """Write the artifact for `checkpoint` to `out` (atomically). Returns the artifact path.

    `samples`: normalised validation inputs for the numerical check (default: the
    checkpoint's own validation split, reloaded from its dataset). `single_graph`: also
    write `single.onnx`, the batch-1 graph with the exit decisions inside (export/single_graph.py).
    `calibration_samples`: with precision "int8", how many validation samples set the activation ranges
    (export/quantize.py); the INT8 graphs are written beside the FP32 ones.
    """
    from edgebranchy.util.checks import is_int_at_least
    from edgebranchy.util.limits import check_whole, limit, reason
    from edgebranchy.util.locks import output_lock
    from edgebranchy.util.outputs import check_output

    check_precision(precision, "`precision`")
    check_whole("check_samples", check_samples, 0, "samples")  # 0 skips the check
    if precision == "int8" and not is_int_at_least(calibration_samples, 1, int(limit("samples"))):
        raise EdgeBranchyError(f"`calibration_samples` must be a whole number from 1 to {limit('samples')} "
                               f"({reason('samples')}), got {calibration_samples!r}")
    n_calib = calibration_samples if precision == "int8" else 0
    with output_lock(out, check=lambda: check_output(out, [checkpoint], "artifact", force=force,
                                                     data_dirs=[data_dir])):  # one export at a time writes `out`
        return _write_artifact(checkpoint, out, precision, simplify, samples, check_samples, force,
                               normalize_entropy, prune, data_dir, single_graph, log, n_calib)


def _write_artifact(checkpoint, out, precision: str, simplify: bool, samples, check_samples: int, force: bool,
                    normalize_entropy, prune: bool, data_dir, single_graph: bool, log: Callable[[str], None],
                    n_calib: int) -> Path:
    plan = _plan(checkpoint, precision, samples, check_samples, normalize_entropy, prune, data_dir, log, n_calib)

    def build(tmp: Path) -> None:
        (tmp / "segments").mkdir()
        files: dict[str, dict] = {}

        def put(rel: str, data: bytes) -> None:
            atomic_write_bytes(tmp / rel, data)
            files[rel] = {"sha256": sha256_file(tmp / rel), "bytes": len(data)}

        segs, fp32_graphs = _write_segments(plan, put, simplify, log)
        base_entry, base_fp32 = _write_baseline(plan, put, simplify, log)
        sg = _write_single(plan, fp32_graphs, put, log) if single_graph else None
        quant = None
        if plan.calib is not None:
            from edgebranchy.export.int8 import write_int8

            quant = write_int8(segs, fp32_graphs, base_entry, base_fp32, plan.calib, plan.normalize, plan.temps,
                               put, log)
        cfg = plan.cfg
        manifest = build_manifest(
            cfg, plan.keep, normalized=plan.normalize, temperatures=plan.temps, single_graph=sg,
            source={"checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
                    "dataset": cfg.get("dataset"), "test": cfg.get("test")},
            segments=segs, baseline=base_entry, files=files,
            exit_macs=[sum(plan.seg_macs[:k + 1]) for k in range(len(plan.keep))],
            precisions=plan.precisions, export=_export_env(), quantization=quant)
        # what the loader would refuse is never written (e.g. a stored negative threshold)
        validate_manifest(manifest, Path(out) / MANIFEST)
        atomic_write_json(tmp / MANIFEST, manifest)

    return write_artifact_dir(out, build, force=force)


def _plan(checkpoint, precision: str, samples, check_samples: int, normalize_entropy, prune: bool, data_dir,
          log: Callable[[str], None], n_calib: int = 0) -> _Plan:
    """Load and check the checkpoint, decide the kept exits and trace examples (nothing written yet)."""
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint
    from edgebranchy.models.segments import fused_costs, kept_exits, segment_graphs
    from edgebranchy.models.summary import summarize

    ck = load_checkpoint(checkpoint)
    cfg = ck.config
    net, baseline = ck.build()
    refuse_non_finite(checkpoint, {"BranchyNet": net, "baseline": baseline})
    check_classes(checkpoint, cfg, net)
    k_exits = net.num_exits
    cal = cfg.get("calibration") or None
    normalize = bool(cal.get("normalized", False)) if (cal and normalize_entropy is None) else bool(normalize_entropy)
    temps = (cal or {}).get("temperatures") or [1.0] * k_exits
    thresholds = (cal or {}).get("thresholds")
    if cal is None:
        log("note: the checkpoint is not calibrated: no sample will exit early until you run "
            "`edgebranchy calibrate` (or pass thresholds to the runner)")
    if samples is None and (check_samples > 0 or n_calib > 0):
        samples = _validation_samples(cfg, max(check_samples, n_calib), data_dir, str(checkpoint))
    checked = 0 if samples is None else min(check_samples, len(samples))
    if checked:
        x = torch.from_numpy(np.ascontiguousarray(samples[:checked], dtype=np.float32))
    else:  # no numerical check: a zero image only traces the graphs
        log("note: numerical check skipped (--check-samples 0): ONNX outputs are not compared with PyTorch")
        x = torch.zeros((1, *cfg["input"]["shape"]), dtype=torch.float32)
    summary = summarize(net, tuple(cfg["input"]["shape"]))
    keep = kept_exits(k_exits, thresholds, prune)
    pruned = [j for j in range(k_exits) if j not in keep]
    if pruned:
        log(f"exit(s) {', '.join(map(str, pruned))} calibrated to threshold 0 (no sample leaves there): "
            "fused into the next segment (--keep-all-exits keeps them)")
    rows = summary["exits"]
    seg_macs = fused_costs([r["stage_macs"] for r in rows], [r["head_macs"] for r in rows], keep)
    graphs = {prec: segment_graphs(net, keep, classes=len(cfg["classes"]), normalize=normalize, temperatures=temps,
                                   half=prec == "fp16") for prec in ["fp32"] + (["fp16"] if precision == "fp16" else [])}
    calib = np.ascontiguousarray(samples[:n_calib], dtype=np.float32) if n_calib else None
    return _Plan(checkpoint, cfg, net, baseline, keep, seg_macs, summary["baseline_macs"], graphs, normalize, temps,
                 thresholds, x, checked, calib)


def _graph(module, example, names: list[str], in_names: list[str], ref: list[np.ndarray], what: str, prec: str,
           checked: int, simplify: bool, log: Callable[[str], None]) -> tuple[bytes, bool, str | None, float | None]:
    """One graph exported, checked, simplified and compared with PyTorch on the check samples: (ONNX bytes,
    simplified, why not, largest relative difference or None when the check was skipped)."""
    data = _export(module, example, names, in_names)
    data, simplified, err = _check_and_simplify(data, what, simplify)
    if err and simplify:
        log(f"warning: onnxsim failed on {what}; kept the unsimplified graph: {err}")
    got = _ort_run(data, {n: t.numpy() for n, t in zip(in_names, _flat(example))})
    diff = _max_diff(got, ref, what) if checked else None
    if diff is not None and diff > TOL[prec]:
        raise EdgeBranchyError(f"{what}: ONNX Runtime differs from PyTorch by {diff:.3g} "
                               f"(tolerance {TOL[prec]}); the export is not trustworthy")
    return data, simplified, err, diff


def _write_segments(plan: _Plan, put, simplify: bool, log: Callable[[str], None]) -> tuple[list[dict], list[bytes]]:
    """Every kept segment's graphs (fp32, and fp16 when asked), each compared with PyTorch on the features the
    fp32 chain passes on; their manifest entries and the fp32 graphs (the single graph is built from them)."""
    import torch

    feats, segs, fp32_graphs = plan.x, [], []
    n_seg = len(plan.keep)
    for k, j in enumerate(plan.keep):
        last = k == n_seg - 1
        with torch.no_grad():
            ref_out = plan.graphs["fp32"][k].eval()(feats)
        ins = _flat(feats)
        in_names, names = segment_io_names(len(ins), 0 if last else len(_flat(ref_out[0])), last)
        ref = [t.numpy() for t in _flat(ref_out)]
        entry = {"index": k, "model_exit": j, "input_shape": list(ins[0].shape[1:]), "macs": plan.seg_macs[k],
                 "inputs": in_names}
        if len(ins) > 1:  # a from_model split: the main tensor and the others later stages read
            entry["input_shapes"] = [list(t.shape[1:]) for t in ins]
        for prec in plan.graphs:
            half = prec == "fp16"
            # fp16 chain: segment 0 takes the fp32 image, later segments take fp16 features
            example = _half(feats) if (half and k > 0) else feats
            data, simplified, err, diff = _graph(plan.graphs[prec][k], example, names, in_names, ref,
                                                 f"segment {k} ({prec})", prec, plan.checked, simplify, log)
            rel = f"segments/seg{k}{'.fp16' if half else ''}.onnx"
            put(rel, data)
            if half:
                entry.update(fp16_file=rel, max_abs_diff_fp16=diff, simplified_fp16=simplified,
                             simplify_error_fp16=err)
            else:
                fp32_graphs.append(data)
                entry.update(file=rel, max_abs_diff=diff, checked_samples=plan.checked, simplified=simplified,
                             simplify_error=err, outputs=names)
        entry.setdefault("fp16_file", None)
        entry["feature_shape"] = None
        if not last:
            feats = ref_out[0]
            entry["feature_shape"] = list(_flat(feats)[0].shape[1:])
            if isinstance(feats, tuple):
                entry["feature_shapes"] = [list(t.shape[1:]) for t in feats]
        segs.append(entry)
        log(f"segment {k}: {entry['macs'] / 1e6:.3f} M MACs, max |ONNX - PyTorch| "
            f"{_diff_text(entry['max_abs_diff'])}"
            + (f" (fp16 {_diff_text(entry['max_abs_diff_fp16'])})" if entry.get("fp16_file") else "")
            + ("" if entry["simplified"] else f", not simplified: {entry['simplify_error']}"))
    return segs, fp32_graphs


def _write_baseline(plan: _Plan, put, simplify: bool, log: Callable[[str], None]) -> tuple[dict, bytes]:
    """baseline.onnx (and baseline.fp16.onnx), compared with PyTorch like the segments; its manifest entry and
    the fp32 graph."""
    import torch

    from edgebranchy.models.graphs import BaselineGraph

    tr = plan.cfg.get("train", {})
    entry = {"macs": plan.baseline_macs, "fp16_file": None,
             "separately_trained": bool(tr.get("baseline_epochs", 1) != 0 and not tr.get("freeze_backbone"))}
    with torch.no_grad():
        ref = [BaselineGraph(plan.baseline, False).eval()(plan.x).numpy()]
    for prec in plan.graphs:
        half = prec == "fp16"
        mod = BaselineGraph(copy.deepcopy(plan.baseline).half() if half else plan.baseline, half)
        data, simplified, err, diff = _graph(mod, plan.x, ["logits"], ["x"], ref, f"baseline ({prec})", prec,
                                             plan.checked, simplify, log)
        rel = f"baseline{'.fp16' if half else ''}.onnx"
        put(rel, data)
        if half:
            entry.update(fp16_file=rel, max_abs_diff_fp16=diff)
        else:
            fp32 = data
            entry.update(file=rel, max_abs_diff=diff, checked_samples=plan.checked, simplified=simplified,
                         simplify_error=err)
    log(f"baseline: {entry['macs'] / 1e6:.3f} M MACs, max |ONNX - PyTorch| {_diff_text(entry['max_abs_diff'])}")
    return entry, fp32


def _write_single(plan: _Plan, fp32_graphs: list[bytes], put, log: Callable[[str], None]):
    """single.onnx (a split passing several tensors feeds each to the next segment's inputs); its manifest entry."""
    side = [float(plan.thresholds[j]) if plan.thresholds else 0.0 for j in plan.keep[:-1]]
    return _single_graph(fp32_graphs, side, len(plan.cfg["classes"]), plan.x.numpy()[:16], put, log)


def _diff_text(diff: float | None) -> str:
    return "not checked" if diff is None else f"{diff:.2g}"


def _half(feats):
    """fp16 copies of the floating-point tensors among `feats` (a tensor or a tuple of them)."""
    if isinstance(feats, tuple):
        return tuple(_half(t) for t in feats)
    return feats.half() if feats.is_floating_point() else feats


def _single_graph(segments: list[bytes], thresholds: list[float], classes: int, samples: np.ndarray, put,
                  log: Callable[[str], None]) -> dict:
    """Build single.onnx from the segment graphs, check it against the per-segment chain, write it."""
    import onnx

    from edgebranchy.export.single_graph import SINGLE_FILE, build_single_graph, check_single_graph, single_graph_entry

    data = build_single_graph([onnx.load_from_string(b) for b in segments], thresholds, classes).SerializeToString()
    check = check_single_graph(data, segments, thresholds, samples)
    put(SINGLE_FILE, data)
    log(f"single graph: {SINGLE_FILE} ({len(segments) - 1} If), same exits and labels as the segments on "
        f"{check['samples']} samples")
    return single_graph_entry(thresholds, SINGLE_FILE, check=check)


def _validation_samples(cfg: dict, n: int, data_dir: str | None, what: str) -> np.ndarray:
    from edgebranchy.data.datasets import Normalization
    from edgebranchy.data.splits import load_recorded

    bundle = load_recorded(cfg.get("dataset"), data_dir, what=what)
    norm = Normalization.from_dict(cfg["input"])
    return bundle.val.x_float(norm, np.arange(min(n, len(bundle.val))))


def _export_env() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    vers = {}
    for pkg in ("torch", "onnx", "onnxsim", "onnxruntime", "numpy"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = None
    return {"opset": OPSET, "exporter": "torch.onnx (TorchScript)", "versions": vers,
            "python": platform.python_version(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
