"""`edgebranchy doctor ARTIFACT`: the user's own artifact on this device's backend, against ONNX Runtime fp32.

Runs N samples (the artifact's recorded test split, else synthetic inputs of its shape, said so)
through the chosen backend and through ONNX Runtime fp32 on the CPU: every exit's logits and
entropy over the whole chain, the early-exit runner's answers, the baseline graph, and each
segment's own latency. `device/agreement.py` says whether the differences are what the
backend's precision explains. On TensorRT the engines are built first (or reused from the
artifact's cache). Needs no torch (only the torch backend does).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.talk import say
from edgebranchy.device.agreement import RTOL, Outputs, compare

SCHEMA = "edgebranchy.doctor-artifact"
REFERENCE = "onnxruntime"


def load_inputs(art, samples: int, dataset: Optional[str], data_dir: Optional[str], seed: int = 0):
    """(normalised inputs [N, C, H, W], true labels or None, what they are). The recorded test split when
    it can be read again; synthetic inputs of the manifest's shape when it cannot (never for a --dataset)."""
    from edgebranchy.data.splits import artifact_test_data

    try:
        name, data = artifact_test_data(art, dataset, data_dir)
        what = f"the test split of {name}" if dataset is not None else f"the recorded test split of {name}"
    except EdgeBranchyError as e:
        if dataset is not None or data_dir is not None:  # asked for: no fallback
            raise
        rng = np.random.default_rng(seed)
        raw = rng.uniform(0.0, float(art.manifest["input"]["scale"]), (samples, *art.input_shape))
        return art.preprocess(raw), None, {"kind": "synthetic", "samples": samples, "seed": seed, "reason": str(e),
                                           "what": f"synthetic inputs of shape {list(art.input_shape)} "
                                                   f"(uniform raw pixels, seed {seed})"}
    n = min(samples, len(data.test))
    x = art.check_input(art.preprocess(data.test.x[:n]))
    return x, np.asarray(data.test.y[:n]), {"kind": "dataset", "samples": n, "name": data.name, "what": what}


def open_backend(art, name: str, options: Optional[dict], precision: Optional[str], profile: str):
    """The backend under test; on TensorRT the engines are built (or found in the artifact's cache) first."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.runtime.backends.base import get_backend_class

    opts = dict(options or {})
    if name == "tensorrt":
        from edgebranchy.device.detection import resolve_profile
        from edgebranchy.tensorrt.build import build_engines

        prof, why = resolve_profile(profile)
        say(f"doctor: TensorRT engines with profile {prof.name} ({why})")
        settings = prof.tensorrt.replace(**({"precision": precision} if precision else {}))
        info = build_engines(art.root, settings, log=say)
        art = Artifact.load(art.root)  # the manifest now lists the engines
        opts.update(precision=info["precision"], device_key=info["device_key"], timing=True)
    elif precision is not None:
        opts["precision"] = precision
    return art, get_backend_class(name)(art, opts)


def arithmetic(backend) -> str:
    """What the backend computes in: fp32, tf32 (TensorRT fp32 engines built with TF32) or fp16."""
    p = backend.describe().get("precision") or "fp32"
    if p == "fp32" and (getattr(backend, "record", None) or {}).get("tf32"):
        return "tf32"
    return p


def run_outputs(art, backend, x: np.ndarray, thresholds: Sequence[float], batch: int,
                step: Callable[[], None]) -> Outputs:
    """Whole-chain outputs and the early-exit runner's answers of `backend` on `x`."""
    from edgebranchy.runtime.full_chain import collect_device_outputs
    from edgebranchy.runtime.runner import EarlyExitRunner

    logits, ents = collect_device_outputs(backend, x, art.num_exits, batch, on_batch=step)
    runner = EarlyExitRunner(art, backend=backend, thresholds=thresholds, form="segments")
    preds, base = [], []
    for i in range(0, len(x), batch):
        preds.append(runner.predict(x[i:i + batch], return_logits=True))
        base.append(np.asarray(backend.run_baseline(np.ascontiguousarray(x[i:i + batch])), dtype=np.float32))
        step()
    return Outputs(logits, ents, np.concatenate([p.labels for p in preds]), np.concatenate([p.exits for p in preds]),
                   np.concatenate([p.entropy for p in preds]).astype(np.float32),
                   np.concatenate([p.logits for p in preds]), np.concatenate(base))


def _bar(total: int):
    from edgebranchy.util import talk

    if not talk.enabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="doctor", unit="batch", leave=False, disable=None)


def check_artifact(path: Any, *, backend: str = "onnxruntime", options: Optional[dict] = None,
                   precision: Optional[str] = None, samples: int = 500, batch_size: int = 1,
                   dataset: Optional[str] = None, data_dir: Optional[str] = None,
                   thresholds: Optional[Sequence[float]] = None, rtol: Optional[float] = None, repeats: int = 20,
                   profile: str = "auto") -> dict:
    """The agreement report of `backend` against ONNX Runtime fp32 on the artifact at `path` (a dict, JSON-safe);
    progress notes go to `util.talk` (on stderr once the CLI enabled it)."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.measure.segment_timing import segment_timings
    from edgebranchy.util.checks import validate_thresholds

    from edgebranchy.util.limits import check_whole

    for name, value, bound in (("samples", samples, "samples"), ("batch_size", batch_size, "batch"),
                               ("repeats", repeats, "repeats")):
        check_whole(name, value, 1, bound)
    if rtol is not None and not (math.isfinite(rtol) and rtol >= 0):
        raise EdgeBranchyError(f"`rtol` must be a finite number >= 0, got {rtol}")
    art = Artifact.load(path, verify=True)
    ts = validate_thresholds(art.thresholds if thresholds is None else list(thresholds), art.num_exits - 1)
    say(f"doctor: reading the inputs of {art.root}")
    x, y, about = load_inputs(art, samples, dataset, data_dir)
    art, cand = open_backend(art, backend, options, precision, profile)
    ref = None
    try:
        from edgebranchy.runtime.backends.base import get_backend_class

        ref = get_backend_class(REFERENCE)(art, None)
        if batch_size > getattr(cand, "max_batch", batch_size):
            raise EdgeBranchyError(f"`batch_size` {batch_size} is above the engines' max batch {cand.max_batch}")
        arith = arithmetic(cand)
        tol = RTOL[arith] if rtol is None else float(rtol)
        n_batches = -(-len(x) // batch_size)
        say(f"doctor: {len(x)} samples through {cand.name}/{arith} and {REFERENCE}/fp32, batch {batch_size}")
        bar = _bar(4 * n_batches)
        step = (lambda: bar.update(1)) if bar is not None else (lambda: None)
        try:
            t0 = time.perf_counter()
            outs = {who: run_outputs(art, be, x, ts, batch_size, step) for who, be in (("candidate", cand),
                                                                                     ("reference", ref))}
            seconds = time.perf_counter() - t0
        finally:
            if bar is not None:
                bar.close()
        lat = {who: segment_timings(be, art.num_exits, x[:batch_size], repeats, be.synchronize)
               for who, be in (("candidate", cand), ("reference", ref))}
        cand_desc, ref_desc = cand.describe(), ref.describe()
    finally:
        cand.close()
        if ref is not None:
            ref.close()
    entropy_max = 1.0 if art.entropy_normalized else math.log(len(art.classes))
    result = compare(outs["reference"], outs["candidate"], ts, tol, entropy_max, y)
    rep = {"schema": SCHEMA, "schema_version": 1, "artifact": str(art.root), "artifact_sha256": art.sha256(),
           "backend": cand.name, "arithmetic": arith, "rtol_source": "--rtol" if rtol is not None else arith,
           "candidate": cand_desc, "reference": ref_desc, "inputs": about, "batch_size": batch_size,
           "thresholds": ts, "classes": art.classes, "seconds": round(seconds, 3),
           "latency_ms": {"batch": min(batch_size, len(x)), "repeats": repeats, **lat}, **result}
    return jsonable(rep)


def jsonable(obj: Any) -> Any:
    """`obj` with numpy scalars as Python numbers and non-finite floats as None (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
