"""A checkpoint as the calibration's source (its logits collected with torch) and as its store (the config).

The validation and test splits are the ones the checkpoint recorded (data/splits.py): reloaded exactly, or
checked when the caller passes them in.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgebranchy.calibration.choose import Outputs, calibrate
from edgebranchy.calibration.costs import MACS, Costs, model_costs, resolve_costs
from edgebranchy.calibration.target import make_target


def collect_logits(net, x: np.ndarray, baseline=None, batch: int = 1000) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(K arrays [N, C] of exit logits, baseline logits or None) for normalised inputs x, in one pass (torch)."""
    import torch

    net.eval()
    outs: list[list[np.ndarray]] = [[] for _ in range(net.num_exits)]
    base: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))
            for k, lg in enumerate(net(xb)):
                outs[k].append(lg.numpy())
            if baseline is not None:
                baseline.eval()
                base.append(baseline(xb).numpy())
    return [np.concatenate(o) for o in outs], (np.concatenate(base) if baseline is not None else None)


class CheckpointSource:
    """Every exit's logits of a checkpoint's network (and its baseline's) on its recorded splits.

    `temperature`: fit a softmax temperature per exit on validation; `normalize`: entropy divided by ln C.
    `data`: the DataBundle to use (checked to be the recorded split), else reloaded from `data_dir`.
    """

    def __init__(self, checkpoint: str | Path, *, temperature: bool = False, normalize: bool = False,
                 data_dir: Optional[str] = None, data=None, name: Optional[str] = None,
                 log: Callable[[str], None] = print):
        from edgebranchy.models.checkpoint import load_checkpoint

        ck = load_checkpoint(checkpoint)
        self.path, self.name, self.config = checkpoint, name or str(checkpoint), ck.config
        self.net, self.baseline = ck.build()
        self.num_exits = self.net.num_exits
        self.temperature, self.normalize = temperature, normalize
        self.data_dir, self.data, self.log = data_dir, data, log

    def mac_costs(self) -> Costs:
        return model_costs(self.net, self.config["input"]["shape"])

    def collect(self, need_baseline: bool = True) -> Outputs:
        """The logits on the validation and test splits; the baseline always runs on validation (its accuracy goes
        in the record)."""
        from edgebranchy.data.datasets import Normalization
        from edgebranchy.data.splits import check_split, load_recorded
        from edgebranchy.exits.temperature import fit_temperature

        data = self.data
        if data is None:
            data = load_recorded(self.config.get("dataset"), self.data_dir, what=self.name)
        else:  # data given by the caller (quickstart): it must be the split the checkpoint trained with
            check_split(self.config.get("dataset") or {}, data, what=self.name)
        norm = Normalization.from_dict(self.config["input"])
        self.log(f"collecting the logits of {self.num_exits} exits on {len(data.val)} validation and "
                 f"{len(data.test)} test samples ...")
        val_logits, val_base = collect_logits(self.net, data.val.x_float(norm), self.baseline)
        test_logits, _ = collect_logits(self.net, data.test.x_float(norm))
        temps = [float(fit_temperature(lg, data.val.y)) for lg in val_logits] if self.temperature else None
        return Outputs(val_logits, data.val.y, test_logits, data.test.y, temperatures=temps,
                       normalized=bool(self.normalize),
                       baseline_accuracy=float((val_base.argmax(1) == data.val.y).mean()))


def store_in_checkpoint(checkpoint: str | Path, record) -> dict:
    """The record as the checkpoint config's `calibration` (the checkpoint rewritten atomically); returns it."""
    from edgebranchy.models.checkpoint import update_config

    stored = record.to_dict()
    update_config(checkpoint, calibration=stored)
    return stored


def calibrate_checkpoint(checkpoint: str | Path, *, max_accuracy_drop: float | None = None,
                         budget: float | None = None, thresholds: list[float] | None = None,
                         reference: str = "final-exit", cost: str = MACS, temperature: bool = False,
                         normalize: bool = False, data_dir: str | None = None, data=None,
                         log: Callable[[str], None] = print, name: str | None = None,
                         warn: Callable[[str], None] | None = None) -> dict:
    """Choose (or evaluate given) thresholds on the validation split and store the record in the checkpoint.

    Exactly one of max_accuracy_drop, budget, thresholds; with none, a 0.5-point drop. `cost`: MACS or a bench
    results file. `name`: what messages call the checkpoint (default its path). `warn` (default: `log`) gets the
    warning when a side exit beats the final exit on the validation split.
    Returns the calibration record (docs/contracts.md), test-split metrics included.
    """
    from edgebranchy.util.locks import output_lock
    from edgebranchy.util.outputs import check_writable

    target = make_target(max_accuracy_drop, budget, thresholds, reference)
    with output_lock(checkpoint, "checkpoint"):  # two calibrations of one checkpoint would lose one update
        source = CheckpointSource(checkpoint, temperature=temperature, normalize=normalize, data_dir=data_dir,
                                  data=data, name=name, log=log)
        target = target.for_exits(source.num_exits, source.name)
        check_writable(checkpoint, "checkpoint")  # it is rewritten at the end: refuse now, not after the work
        costs = resolve_costs(cost, source)  # before the data: a bad results file is refused at once
        return store_in_checkpoint(checkpoint, calibrate(source, target, costs, warn or log))
