"""Calibrate a checkpoint's thresholds: collect logits, choose thresholds, store the record (needs torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgebranchy.artifact.calibration import CalibrationRecord
from edgebranchy.errors import EdgeBranchyError


def calibrate_checkpoint(checkpoint: str | Path, *, max_accuracy_drop: float | None = None,
                         budget: float | None = None, thresholds: list[float] | None = None,
                         reference: str = "final-exit", cost: str = "flops", temperature: bool = False,
                         normalize: bool = False, data_dir: str | None = None, data=None,
                         log: Callable[[str], None] = print, name: str | None = None) -> dict:
    """Choose (or evaluate given) thresholds on the validation split and store the record in the checkpoint.

    Exactly one of max_accuracy_drop, budget, thresholds; with none, a 0.5-point drop. `name`: what
    messages call the checkpoint (default its path).
    Returns the calibration record (docs/architecture.md), test-split metrics included.
    """
    from edgebranchy.data.datasets import Normalization
    from edgebranchy.data.splits import check_split, load_recorded
    from edgebranchy.exits.pruning import calibrate_pruned, evaluate_pruned
    from edgebranchy.exits.temperature import fit_temperature
    from edgebranchy.models.summary import summarize
    from edgebranchy.models.checkpoint import load_checkpoint, update_config
    from edgebranchy.train.collect import collect_logits

    given = [v is not None for v in (max_accuracy_drop, budget, thresholds)]
    if sum(given) > 1:
        raise EdgeBranchyError("give one of --max-accuracy-drop, --budget and --thresholds")
    if reference not in ("final-exit", "baseline"):
        raise EdgeBranchyError(f"reference must be final-exit or baseline, got {reference!r}")
    _check_targets(max_accuracy_drop, budget)
    ck = load_checkpoint(checkpoint)
    cfg = ck.config
    net, baseline = ck.build()
    k = net.num_exits
    if k < 2:
        raise EdgeBranchyError(f"{checkpoint}: a network with one exit has no threshold to calibrate")
    if thresholds is not None:
        from edgebranchy.util.checks import validate_thresholds

        thresholds = validate_thresholds(thresholds, k - 1, where="--thresholds")
    from edgebranchy.util.outputs import check_writable

    check_writable(checkpoint, "checkpoint")  # it is rewritten at the end: refuse now, not after the work
    # costs first: a bad --cost file is refused before the data is loaded
    if cost == "flops":
        s = summarize(net, tuple(cfg["input"]["shape"]))
        seg_costs = [float(r["segment_macs"]) for r in s["exits"]]
        head_costs = [float(r["head_macs"]) for r in s["exits"]]
        base_cost, cost_source = float(s["baseline_macs"]), "flops (MACs counted from the model)"
    else:
        from edgebranchy.exits.costs import costs_from_results

        seg_costs, base_cost, cost_source = costs_from_results(cost, k)
        head_costs = None  # measured per segment: a head's own share is unknown, no exit is switched off
    if data is None:
        data = load_recorded(cfg.get("dataset"), data_dir, what=name or str(checkpoint))
    else:  # data given by the caller (quickstart): it must be the split the checkpoint trained with
        check_split(cfg.get("dataset") or {}, data, what=name or str(checkpoint))
    norm = Normalization.from_dict(cfg["input"])
    log(f"collecting the logits of {k} exits on {len(data.val)} validation and {len(data.test)} test samples ...")
    val_logits, val_base = collect_logits(net, data.val.x_float(norm), baseline)
    test_logits, _ = collect_logits(net, data.test.x_float(norm))

    temps = [float(fit_temperature(lg, data.val.y)) for lg in val_logits] if temperature else None
    common = dict(normalize=normalize, temperatures=temps)
    base_val_acc = float((val_base.argmax(1) == data.val.y).mean())
    import time

    t_search = time.perf_counter()
    if thresholds is not None:
        val = evaluate_pruned(val_logits, data.val.y, thresholds, seg_costs, head_costs, base_cost, **common)
        chosen = {"method": "manual", "target": None, "reference": reference, "segment_costs": seg_costs,
                  "baseline_cost": base_cost, "thresholds": [float(t) for t in thresholds], "temperatures": temps,
                  "validation": val, "frontier": None}
    else:
        drop = max_accuracy_drop if (max_accuracy_drop is not None or budget is not None) else 0.5
        res = calibrate_pruned(val_logits, data.val.y, seg_costs, head_costs, base_cost,
                        max_accuracy_drop=None if budget is not None else drop, budget=budget,
                        reference_accuracy=base_val_acc if reference == "baseline" else None, **common)
        chosen = res.to_dict()
    search_seconds = time.perf_counter() - t_search
    chosen.update(
        cost_source=cost_source, normalized=bool(normalize), head_costs=head_costs, search_seconds=search_seconds,
        test=evaluate_pruned(test_logits, data.test.y, chosen["thresholds"], seg_costs, head_costs, base_cost,
                             **common),
        final_exit_accuracy={"validation": float((val_logits[-1].argmax(1) == data.val.y).mean()),
                             "test": float((test_logits[-1].argmax(1) == data.test.y).mean())},
        baseline_accuracy={"validation": base_val_acc})
    record = CalibrationRecord(**chosen).to_dict()
    update_config(checkpoint, calibration=record)
    return record


def _check_targets(max_accuracy_drop, budget) -> None:
    from edgebranchy.util.checks import is_finite_at_least

    if max_accuracy_drop is not None and not (is_finite_at_least(max_accuracy_drop, 0) and max_accuracy_drop <= 100):
        raise EdgeBranchyError(f"--max-accuracy-drop must be a number of percentage points from 0 to 100, "
                               f"got {max_accuracy_drop!r}")
    if budget is not None and not (is_finite_at_least(budget, 0) and 0 < budget <= 1):
        raise EdgeBranchyError(f"--budget must be a fraction in (0, 1], got {budget!r}")
