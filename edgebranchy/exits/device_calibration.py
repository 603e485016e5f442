"""Thresholds recomputed on the device from what the deployed graphs produce (no torch).

FP16 graphs and TensorRT engines give entropies that differ from PyTorch's, so
thresholds chosen on the training machine do not send the same samples out.
Here every segment of the artifact runs on the validation split with the
chosen backend; the entropies its graphs compute and its logits go into the
same exact search (`exits.calibrate`) with the same target, costs from the
manifest's per-segment MACs (or a bench results file). Both calibrations are
kept in the manifest: `calibration` stays the original, and
`device_calibration` = {"original_thresholds", "records": {backend/precision:
record}, "applied"}; applying one writes its thresholds into `exits`. The
manifest is rewritten atomically; the files' sha256 entries are untouched and
the artifact is reloaded with verification before this returns.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from edgebranchy.errors import EdgeBranchyError


def collect_device_outputs(backend, x: np.ndarray, num_exits: int, batch_size: int = 256,
                           on_batch: Callable[[], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every exit's logits [N, C] and graph-computed entropies [N] for normalised inputs `x` (no early exit);
    `on_batch` is called after each batch (progress)."""
    logits: list[list[np.ndarray]] = [[] for _ in range(num_exits)]
    ents: list[list[np.ndarray]] = [[] for _ in range(num_exits)]
    for i in range(0, len(x), batch_size):
        h = backend.to_device(np.ascontiguousarray(x[i:i + batch_size]))
        for k in range(num_exits):
            launch = backend.launch(k, h, 0)
            ents[k].append(np.asarray(launch.entropy(), dtype=np.float32).copy())
            logits[k].append(np.asarray(backend.to_host(launch.logits), dtype=np.float32).copy())
            h = launch.features
        if on_batch is not None:
            on_batch()
    backend.synchronize()
    return [np.concatenate(v) for v in logits], [np.concatenate(v) for v in ents]


def _costs(art, cost: str) -> tuple[list[float], float, str]:
    if cost == "flops":
        try:
            seg = [float(s["macs"]) for s in art.manifest["segments"]]
            base = float(art.manifest["baseline"]["macs"])
        except (KeyError, TypeError, ValueError):
            raise EdgeBranchyError(f"{art.root}: the manifest records no per-segment MACs; pass --cost "
                                   "RESULTS.json from `edgebranchy bench`") from None
        return seg, base, "flops (MACs recorded in the artifact manifest)"
    from edgebranchy.exits.costs import costs_from_results

    return costs_from_results(cost, art.num_exits)


def _load_split(art, dataset: str | None, data_dir: str | None):
    """The validation split the artifact's checkpoint recorded (data/splits.py); another data set named
    with `dataset` only where the artifact records none (it was never trained on that one's samples)."""
    from edgebranchy.data.datasets import load_dataset
    from edgebranchy.data.splits import load_recorded

    recorded = (art.manifest.get("source") or {}).get("dataset") or {}
    if dataset is None or recorded.get("name") == dataset:
        return load_recorded(recorded, data_dir, what=str(art.root))
    if recorded.get("name"):
        raise EdgeBranchyError(f"{art.root} was trained on {recorded['name']}: calibrate it on that data set's "
                               f"validation split (drop --dataset {dataset}); any other split may hold samples "
                               "it was not meant to be calibrated on")
    return load_dataset(dataset, data_dir)


def calibrate_artifact(artifact: str | Path, *, backend: str = "onnxruntime", options: dict | None = None,
                       dataset: str | None = None, data_dir: str | None = None,
                       max_accuracy_drop: float | None = None, budget: float | None = None,
                       thresholds: list[float] | None = None, reference: str = "final-exit",
                       cost: str = "flops", batch_size: int = 256, apply: bool = True,
                       log: Callable[[str], None] = print) -> dict:
    """Recompute the thresholds on this device's backend and record them in the artifact's manifest.

    Returns the device record (the search result on validation, test-split
    metrics, what the original thresholds do on this backend, and where it ran).
    """
    from edgebranchy.exits.calibrate import calibrate, evaluate
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.runtime.backends.base import get_backend_class

    if sum(v is not None for v in (max_accuracy_drop, budget, thresholds)) > 1:
        raise EdgeBranchyError("give one of --max-accuracy-drop, --budget and --thresholds")
    if reference not in ("final-exit", "baseline"):
        raise EdgeBranchyError(f"reference must be final-exit or baseline, got {reference!r}")
    if batch_size < 1:
        raise EdgeBranchyError("--batch-size must be at least 1")
    art = Artifact.load(artifact, verify=True)
    k = art.num_exits
    if k < 2:
        raise EdgeBranchyError(f"{art.root}: one exit, no threshold to calibrate")
    seg_costs, base_cost, cost_source = _costs(art, cost)
    data = _load_split(art, dataset, data_dir)
    be = get_backend_class(backend)(art, options)
    try:
        desc = be.describe()
        precision = desc.get("precision", "fp32")
        key = f"{be.name}/{precision}"
        log(f"running {k} segments on {len(data.val)} validation and {len(data.test)} test samples with {key} ...")
        xv, xt = art.preprocess(data.val.x), art.preprocess(data.test.x)
        val_logits, val_ent = collect_device_outputs(be, xv, k, batch_size)
        test_logits, test_ent = collect_device_outputs(be, xt, k, batch_size)
        base_acc = None
        if reference == "baseline":
            base = np.concatenate([be.run_baseline(np.ascontiguousarray(xv[i:i + batch_size]))
                                   for i in range(0, len(xv), batch_size)])
            base_acc = float((base.argmax(1) == data.val.y).mean())
    finally:
        be.close()
    # the graphs' entropies are used as computed; `normalize` only sets their ceiling (ln C or 1)
    common = dict(entropies=val_ent, normalize=bool((art.manifest.get("entropy") or {}).get("normalized")))
    original = art.thresholds
    t0 = time.perf_counter()
    if thresholds is not None:
        ts = [float(t) for t in thresholds]
        rec = {"method": "manual", "target": None, "reference": reference, "segment_costs": seg_costs,
               "baseline_cost": base_cost, "thresholds": ts,
               "validation": evaluate(val_logits, data.val.y, ts, seg_costs, base_cost, **common), "frontier": None}
    else:
        drop = max_accuracy_drop if (max_accuracy_drop is not None or budget is not None) else 0.5
        res = calibrate(val_logits, data.val.y, seg_costs, base_cost,
                        max_accuracy_drop=None if budget is not None else drop, budget=budget,
                        reference_accuracy=base_acc, **common)
        rec = res.to_dict()
    rec["search_seconds"] = time.perf_counter() - t0
    rec.update({
        "cost_source": cost_source,
        "entropy_source": f"the deployed graphs' entropy outputs ({key}: temperatures and normalisation as exported)",
        "test": evaluate(test_logits, data.test.y, rec["thresholds"], seg_costs, base_cost, entropies=test_ent),
        "previous_thresholds_here": {
            "thresholds": original,
            "validation": evaluate(val_logits, data.val.y, original, seg_costs, base_cost, **common),
            "test": evaluate(test_logits, data.test.y, original, seg_costs, base_cost, entropies=test_ent)},
        "final_exit_accuracy": {"validation": float((val_logits[-1].argmax(1) == data.val.y).mean()),
                                "test": float((test_logits[-1].argmax(1) == data.test.y).mean())},
        "backend": be.name, "precision": precision, "backend_options": desc, "dataset": data.describe(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    rec = json.loads(json.dumps(rec, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    _record(art, key, rec, apply)
    Artifact.load(art.root, verify=True)  # the loader must still accept it
    return rec


def _record(art, key: str, rec: dict, apply: bool) -> None:
    m = art.manifest
    dev = dict(m.get("device_calibration") or {})
    dev.setdefault("original_thresholds", art.thresholds)  # the first device calibration keeps the export's
    dev["records"] = {**(dev.get("records") or {}), key: rec}
    if apply:
        for e, t in zip(m["exits"][:-1], rec["thresholds"]):
            e["threshold"] = float(t)
        dev["applied"] = key
    else:
        dev.setdefault("applied", None)
    art.add_files([], {"device_calibration": dev})

