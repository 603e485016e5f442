"""Calibration that may switch a side exit off (threshold 0) and so save its head's cost."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgebranchy.exits.calibrate import calibrate
from edgebranchy.exits.pruning import calibrate_pruned, effective_costs, evaluate_pruned


def _problem(seed=0, n=300, k=3, c=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = []
    for j in range(k):
        lg = rng.normal(size=(n, c)) * (1 + j)
        lg[np.arange(n), labels] += rng.uniform(0, 3 + j, n)  # later exits more accurate
        logits.append(lg)
    return logits, labels


def test_effective_costs():
    assert effective_costs([10, 5, 3], [8, 1, 1], [0.0, 0.7]) == [2.0, 5.0, 3.0]
    assert effective_costs([10, 5, 3], [8, 1, 1], [0.0, 0.0]) == [2.0, 4.0, 3.0]
    assert effective_costs([10, 5, 3], None, [0.0, 0.7]) == [10.0, 5.0, 3.0]


def test_without_head_costs_it_is_plain_calibration():
    logits, labels = _problem()
    a = calibrate(logits, labels, [1, 1, 1], 3.0, max_accuracy_drop=1.0)
    b = calibrate_pruned(logits, labels, [1, 1, 1], None, 3.0, max_accuracy_drop=1.0)
    assert a.thresholds == b.thresholds and a.cost == b.cost


def test_expensive_head_is_switched_off():
    logits, labels = _problem(1)
    seg, heads = [50.0, 2.0, 2.0], [49.0, 1.0, 1.0]  # exit 0's head costs far more than anything it saves
    res = calibrate_pruned(logits, labels, seg, heads, 4.0, max_accuracy_drop=2.0)
    assert res.thresholds[0] == 0.0 and res.exit_fractions[0] == 0.0
    ev = evaluate_pruned(logits, labels, res.thresholds, seg, heads, 4.0)
    assert res.cost == pytest.approx(ev["cost"]) and res.cost < 4.0
    assert res.accuracy >= (logits[-1].argmax(1) == labels).mean() - 0.02 - 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", [{"max_accuracy_drop": 1.5}, {"budget": 0.8}])
def test_equals_brute_force_over_subsets(seed, mode):
    logits, labels = _problem(seed, n=60)
    seg, heads, base = [3.0, 2.0, 2.0], [2.0, 1.0, 0.5], 6.0
    res = calibrate_pruned(logits, labels, seg, heads, base, **mode)
    from edgebranchy.exits.entropy import entropy

    cands = [[0.0] + sorted({float(np.nextafter(e, np.inf)) for e in entropy(lg)}) for lg in logits[:2]]
    best = None
    ref = (logits[-1].argmax(1) == labels).mean()
    for t in itertools.product(*cands):
        ev = evaluate_pruned(logits, labels, list(t), seg, heads, base)
        ok = (ev["accuracy"] >= ref - mode["max_accuracy_drop"] / 100 - 1e-9) if "max_accuracy_drop" in mode \
            else ev["relative_cost"] <= mode["budget"] + 1e-9
        if not ok:
            continue
        key = (ev["cost"], -ev["accuracy"]) if "max_accuracy_drop" in mode else (-ev["accuracy"], ev["cost"])
        best = key if best is None or key < best else best
    got = (res.cost, -res.accuracy) if "max_accuracy_drop" in mode else (-res.accuracy, res.cost)
    assert got[0] == pytest.approx(best[0])
