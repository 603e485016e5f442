"""Calibrated thresholds sit midway between adjacent distinct validation entropies (exits/rule.threshold_between),
so a last-bit difference between the entropies calibrated on and those a device computes moves no sample."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgebranchy.exits import calibrate as cal_module
from edgebranchy.exits.calibrate import calibrate
from edgebranchy.exits.entropy import entropy
from edgebranchy.exits.rule import assign_exits, float32_threshold, threshold_between


def _problem(seed: int, n: int, k: int, c: int = 10):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = []
    for j in range(k):
        z = rng.normal(size=(n, c)) * 2
        z[np.arange(n), labels] += (1 + j) * rng.uniform(0, 3, n)
        logits.append(z)
    return logits, labels, [float(x) for x in rng.integers(1, 6, k)]


TARGETS = [{"max_accuracy_drop": 1.0}, {"max_accuracy_drop": 8.0}, {"budget": 0.5}, {"budget": 0.8}]


def _all_threshold_sets(r):
    return [r.thresholds] + [p["thresholds"] for p in r.frontier]


def _check_midway(ents: np.ndarray, thresholds, ceiling: float) -> None:
    """Every threshold: 0.0 when nobody leaves there, else the float32 at or above the midpoint between the
    largest entropy that leaves and the smallest finite one that reaches the exit and stays."""
    exits = assign_exits(ents.T, thresholds)
    for k, t in enumerate(thresholds):
        leave, stay = ents[k, exits == k], ents[k, exits > k]
        stay = stay[np.isfinite(stay)]
        if not leave.size:
            assert t == 0.0
            continue
        a = float(leave.max())
        assert float(np.float32(t)) == t, "a float32 value: the single graph's initializer is the threshold itself"
        if not stay.size:
            assert t == float32_threshold(1.5 * max(ceiling, a))
            continue
        b = float(stay.min())
        mid = a + (b - a) / 2
        assert a < t <= b and t == float32_threshold(mid)
        assert abs(t - mid) <= abs(float(np.spacing(np.float32(mid))))


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("target", TARGETS)
def test_thresholds_sit_midway_between_entropies(k, target):
    logits, labels, costs = _problem(k, n=400, k=k)
    r = calibrate(logits, labels, costs, sum(costs), **target)
    ents = np.stack([entropy(x) for x in logits])
    for ts in _all_threshold_sets(r):
        _check_midway(ents, ts, math.log(10))


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("target", TARGETS)
def test_the_search_chooses_the_same_exit_sets_as_with_nextafter(k, target, monkeypatch):
    """Only where the thresholds sit changed: the exits chosen (and every frontier point's) are those the
    one-float-step-above convention gave."""
    logits, labels, costs = _problem(10 + k, n=300, k=k)
    ents = np.stack([entropy(x) for x in logits])
    new = calibrate(logits, labels, costs, sum(costs), **target)
    monkeypatch.setattr(cal_module, "threshold_between", lambda lo, hi, c: float(np.nextafter(lo, np.inf)))
    old = calibrate(logits, labels, costs, sum(costs), **target)
    assert len(new.frontier) == len(old.frontier)
    for a, b in zip(_all_threshold_sets(new), _all_threshold_sets(old)):
        assert assign_exits(ents.T, a).tolist() == assign_exits(ents.T, b).tolist()
    assert (new.accuracy, new.cost, new.exit_fractions) == (old.accuracy, old.cost, old.exit_fractions)


@pytest.mark.parametrize("seed", range(6))
def test_a_last_bit_difference_moves_no_validation_sample(seed):
    """The same validation entropies computed in float32 (as a graph does), then one float32 step up or down:
    every sample leaves where the calibration said. One float step above an entropy moved some."""
    logits, labels, _ = _problem(100 + seed, n=500, k=3)
    r = calibrate(logits, labels, [1.0, 1.0, 1.0], 3.0, budget=0.6)
    ents = np.stack([entropy(x) for x in logits])
    want = assign_exits(ents.T, r.thresholds)
    assert 0 < np.count_nonzero(want < 2) < len(want), "some samples must leave early for the test to mean much"
    e32 = ents.astype(np.float32)
    for shifted in (e32, np.nextafter(e32, np.float32(np.inf)), np.nextafter(e32, np.float32(-np.inf))):
        assert assign_exits(shifted.T.astype(np.float64), r.thresholds).tolist() == want.tolist()


def test_threshold_between_edges():
    assert threshold_between(0.25, 0.75, 2.3) == 0.5
    # every sample leaves: above any entropy there can be (1.5 x ln C, or 1.5 normalised)
    assert threshold_between(0.4, None, math.log(10)) == float32_threshold(1.5 * math.log(10))
    assert threshold_between(1.0000001, None, 1.0) == float32_threshold(1.5 * 1.0000001)
    # adjacent float32 values: no float32 lies strictly between, the float64 midpoint does
    a = float(np.float32(0.1))
    b = float(np.nextafter(np.float32(0.1), np.float32(1)))
    t = threshold_between(a, b, 2.3)
    assert a < t <= b
    # adjacent doubles: the upper one
    c = float(np.nextafter(0.3, 1.0))
    assert threshold_between(0.3, c, 2.3) == c


def test_device_graph_decides_the_calibrated_exits_on_validation(tiny_checkpoint, tmp_path):
    """A checkpoint calibrated on float64 entropies of torch logits; its exported float32 graphs (segments and
    the single graph, whose threshold initializers are the recorded thresholds themselves) send every
    validation sample where the calibration counted it."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from edgebranchy.data.splits import load_recorded
    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.runtime.runner import EarlyExitRunner
    from edgebranchy.calibration import calibrate_checkpoint

    ck = tmp_path / "c.pt"
    shutil.copy(tiny_checkpoint, ck)
    rec = calibrate_checkpoint(ck, budget=0.7, log=lambda s: None)
    art = tmp_path / "art"
    export_checkpoint(ck, art, log=lambda s: None)
    m = json.loads((art / "manifest.json").read_text())
    g = onnx.load(str(art / m["single_graph"]["file"]))
    inits = {t.name: float(numpy_helper.to_array(t)) for t in g.graph.initializer if "threshold" in t.name}
    assert sorted(inits.values()) == sorted(rec["thresholds"])
    data = load_recorded(m["source"]["dataset"])
    with EarlyExitRunner(art) as r:
        x = r.artifact.preprocess(data.val.x)
        exits = np.concatenate([r.predict(x[i:i + 50]).exits for i in range(0, len(x), 50)])
        one = [int(r.predict(x[i:i + 1]).exits[0]) for i in range(0, len(x), 7)]
    assert (np.bincount(exits, minlength=2) / len(exits)).tolist() == rec["validation"]["exit_fractions"]
    assert one == exits[::7].tolist()
