"""An artifact as the calibration's source (its deployed graphs run on a backend, no torch) and as its store
(the manifest's `device_calibration`).

FP16 graphs and TensorRT engines give entropies that differ from PyTorch's, so thresholds chosen on the training
machine do not send the same samples out. Here every segment of the artifact runs on the validation split with
the chosen backend; the entropies its graphs compute and its logits go into the same exact search with the same
target, costs from the manifest's per-segment MACs (or a bench results file). Both calibrations are kept in the
manifest: `calibration` stays the original, and `device_calibration` = {"original_thresholds", "records":
{backend/precision: record}, "applied"}; applying one writes its thresholds into `exits`. The manifest is
rewritten atomically; the files' sha256 entries are untouched and the artifact is reloaded with verification.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgebranchy.calibration.choose import Outputs, choose
from edgebranchy.calibration.costs import MACS, Costs, manifest_costs, resolve_costs
from edgebranchy.calibration.target import make_target
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.full_chain import collect_device_outputs
from edgebranchy.util.limits import check_whole


class ArtifactSource:
    """Every exit's logits and graph-computed entropies of an artifact run on a backend, on the validation and
    test splits the artifact records (another `dataset` only where it records none)."""

    def __init__(self, artifact, *, backend: str = "onnxruntime", options: Optional[dict] = None,
                 dataset: Optional[str] = None, data_dir: Optional[str] = None, batch_size: int = 256,
                 name: Optional[str] = None, log: Callable[[str], None] = print):
        from edgebranchy.artifact.manifest import Artifact
        from edgebranchy.runtime.backends.base import get_backend_class
        self._backend_class = get_backend_class(backend)  # an unknown name is refused before any data is read
        check_whole("batch_size", batch_size, 1, "batch")
        self.art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact, verify=True)
        self.name = name or str(self.art.root)
        self.num_exits = self.art.num_exits
        self.options, self.batch_size = options, batch_size
        self.dataset, self.data_dir, self.log = dataset, data_dir, log
        self.ran_on: dict = {}   # filled by collect: backend, precision, backend_options, dataset

    def mac_costs(self) -> Costs:
        return manifest_costs(self.art)

    def _split(self):
        """The validation split the artifact's checkpoint recorded (data/splits.py); another data set named
        with `dataset` only where the artifact records none (it was never trained on that one's samples)."""
        from edgebranchy.data.datasets import load_dataset
        from edgebranchy.data.splits import load_recorded

        recorded = (self.art.manifest.get("source") or {}).get("dataset") or {}
        if self.dataset is None or recorded.get("name") == self.dataset:
            return load_recorded(recorded, self.data_dir, what=self.name)
        if recorded.get("name"):
            raise EdgeBranchyError(f"{self.name} was trained on {recorded['name']}: calibrate it on that data set's "
                                   f"validation split (drop `dataset` {self.dataset}); any other split may hold "
                                   "samples it was not meant to be calibrated on")
        return load_dataset(self.dataset, self.data_dir)

    def collect(self, need_baseline: bool = False) -> Outputs:
        """Run every segment on both splits (and the baseline on validation when `need_baseline`)."""
        data = self._split()
        art, bs, k = self.art, self.batch_size, self.num_exits
        be = self._backend_class(art, self.options)
        try:
            desc = be.describe()
            precision = desc.get("precision", "fp32")
            self.log(f"running {k} segments on {len(data.val)} validation and {len(data.test)} test samples with "
                     f"{be.name}/{precision} ...")
            xv, xt = art.preprocess(data.val.x), art.preprocess(data.test.x)
            val_logits, val_ent = collect_device_outputs(be, xv, k, bs)
            test_logits, test_ent = collect_device_outputs(be, xt, k, bs)
            base_acc = None
            if need_baseline:
                base = np.concatenate([be.run_baseline(np.ascontiguousarray(xv[i:i + bs]))
                                       for i in range(0, len(xv), bs)])
                base_acc = float((base.argmax(1) == data.val.y).mean())
        finally:
            be.close()
        self.ran_on = {"backend": be.name, "precision": precision, "backend_options": desc,
                       "dataset": data.describe()}
        # the graphs' entropies are used as computed; `normalized` only sets their ceiling (ln C or 1)
        return Outputs(val_logits, data.val.y, test_logits, data.test.y, val_entropies=val_ent,
                       test_entropies=test_ent, baseline_accuracy=base_acc,
                       normalized=bool((art.manifest.get("entropy") or {}).get("normalized")))


def device_record(source: ArtifactSource, out: Outputs, record, costs: Costs) -> dict:
    """The record as `device_calibration` keeps it: the calibration record, what the thresholds in force before
    do on this backend, and where it ran."""
    original = source.art.thresholds
    key = f"{source.ran_on['backend']}/{source.ran_on['precision']}"
    rec = {**record.to_dict(),
           "entropy_source": f"the deployed graphs' entropy outputs ({key}: temperatures and normalisation as "
                             "exported)",
           "previous_thresholds_here": {"thresholds": original, "validation": out.evaluate(original, costs),
                                        "test": out.evaluate(original, costs, "test")},
           **source.ran_on, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return json.loads(json.dumps(rec, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


def store_in_manifest(art, rec: dict, apply: bool = True) -> None:
    """Keep `rec` under its backend/precision in the manifest's `device_calibration` (the first one keeps the
    export's thresholds as `original_thresholds`); with `apply` its thresholds become the artifact's. A record made
    on int8 graphs is never written into `exits` (the fp32 calibration stays): int8 runs read it from its key."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.vocab import RECALIBRATED

    key = f"{rec['backend']}/{rec['precision']}"
    m = art.manifest
    dev = dict(m.get("device_calibration") or {})
    dev.setdefault("original_thresholds", art.thresholds)  # the first device calibration keeps the export's
    dev["records"] = {**(dev.get("records") or {}), key: rec}
    if rec["precision"] in RECALIBRATED:
        dev.setdefault("applied", None)
    elif apply:
        for e, t in zip(m["exits"][:-1], rec["thresholds"]):
            e["threshold"] = float(t)
        dev["applied"] = key
    else:
        dev.setdefault("applied", None)
    art.add_files([], {"device_calibration": dev})
    Artifact.load(art.root, verify=True)  # the loader must still accept it


def calibrate_artifact(artifact: str | Path, *, backend: str = "onnxruntime", options: dict | None = None,
                       dataset: str | None = None, data_dir: str | None = None,
                       max_accuracy_drop: float | None = None, budget: float | None = None,
                       thresholds: list[float] | None = None, reference: str = "final-exit",
                       cost: str = MACS, batch_size: int = 256, apply: bool = True, name: str | None = None,
                       log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> dict:
    """Recompute the thresholds on this device's backend and record them in the artifact's manifest (in place).

    Returns the device record (the search result on validation, test-split metrics, what the original thresholds
    do on this backend, and where it ran). `warn` (default: `log`) gets the warning when a side exit beats the
    final exit on the validation split.
    """
    from edgebranchy.util.locks import output_lock

    target = make_target(max_accuracy_drop, budget, thresholds, reference)
    with output_lock(artifact, "artifact"):  # two calibrations of one artifact would lose one update
        source = ArtifactSource(artifact, backend=backend, options=options, dataset=dataset, data_dir=data_dir,
                                batch_size=batch_size, name=name, log=log)
        target = target.for_exits(source.num_exits, source.name)
        costs = resolve_costs(cost, source)
        out = source.collect(need_baseline=target.reference == "baseline")
        rec = device_record(source, out, choose(out, target, costs, warn or log), costs)
        store_in_manifest(source.art, rec, apply)
    return rec
