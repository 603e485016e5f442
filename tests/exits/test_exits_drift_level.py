"""The exit-rate drift test's false-alarm rate, measured on a real trained model's exits, and its power.

The tiny B-LeNet of conftest.py (trained on the synthetic set, exported, run with ONNX Runtime) gives
every validation and test sample's logits and graph entropies. Under the null hypothesis the data the
device sees comes from the calibration's own distribution, so each round draws a calibration split and a
test split (with replacement, the sizes of the real ones) from the pooled validation and test samples,
chooses the threshold on the first as the fixture's calibration did (half the samples leave early) and
tests the second's exits against its fractions. The rate of warnings must stay at the nominal level, which
the one-sample binomial test used before did not (the rates of a 2,000-round run of these rounds, old test
against new, are in docs/architecture.md, Exit-rate drift).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgebranchy.exits.calibrate import calibrate
from edgebranchy.exits.drift import exit_rate_drift
from edgebranchy.exits.rule import assign_exits, threshold_between

ROUNDS = 600


@pytest.fixture(scope="module")
def outputs(tiny_artifact):
    """(logits, entropies, labels) of the validation and test splits, from the artifact's fp32 graphs, and the
    manifest's segment costs."""
    from edgebranchy.data.splits import load_recorded
    from edgebranchy.runtime.full_chain import collect_device_outputs
    from edgebranchy.runtime.runner import EarlyExitRunner

    m = json.loads((tiny_artifact / "manifest.json").read_text())
    data = load_recorded(m["source"]["dataset"])
    out = {}
    with EarlyExitRunner(tiny_artifact) as r:
        for name, split in (("val", data.val), ("test", data.test)):
            logits, ents = collect_device_outputs(r.backend, r.artifact.preprocess(split.x), 2)
            out[name] = (logits, ents, split.y)
    out["costs"] = [float(s["macs"]) for s in m["segments"]]
    return out


def _pool(outputs):
    val, test = outputs["val"], outputs["test"]
    logits = [np.concatenate([val[0][k], test[0][k]]) for k in range(2)]
    ents = np.stack([np.concatenate([val[1][k], test[1][k]]) for k in range(2)])
    return logits, ents, np.concatenate([val[2], test[2]]), len(val[2]), len(test[2])


def _at_the_median(ents, logits, y, costs):
    """Thresholds as the fixture's calibration chose them: half the calibration samples leave at exit 0."""
    e = np.unique(ents[0])
    return [threshold_between(float(e[len(e) // 2 - 1]), float(e[len(e) // 2]), math.log(10))]


def _exact_search(ents, logits, y, costs):
    """The exact search of `calibrate ARTIFACT` (on this easy set exit 0 is as accurate as the last: everyone
    leaves there)."""
    return calibrate(logits, y, costs, sum(costs), max_accuracy_drop=0.5, entropies=list(ents)).thresholds


def _one_step_above_the_largest(ents, logits, y, costs):
    """What the search gave before for "everyone leaves": one float step above the largest entropy."""
    return [float(np.nextafter(ents[0].max(), np.inf))]


def _false_alarms(outputs, alpha: float, min_effect: float, rounds: int = ROUNDS, choose=_at_the_median):
    """Warnings in `rounds` draws of a calibration and a test split from the same distribution."""
    logits, ents, y, n1, n2 = _pool(outputs)
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(rounds):
        a, b = rng.integers(0, len(y), n1), rng.integers(0, len(y), n2)
        thresholds = choose(ents[:, a], [lg[a] for lg in logits], y[a], outputs["costs"])
        expected = (np.bincount(assign_exits(ents[:, a].T, thresholds), minlength=2) / n1).tolist()
        counts = np.bincount(assign_exits(ents[:, b].T, thresholds), minlength=2)
        alarms += exit_rate_drift(counts, expected, n1, alpha=alpha, min_effect=min_effect).drifted
    return alarms


def _allowed(rounds: int, alpha: float) -> float:
    """The most warnings a test at level alpha may give in `rounds` rounds (3 standard deviations of slack)."""
    return rounds * alpha + 3 * math.sqrt(rounds * alpha * (1 - alpha)) + 1


def test_false_alarm_rate_at_the_default_level(outputs):
    alarms = _false_alarms(outputs, alpha=1e-3, min_effect=0.03)
    assert alarms <= _allowed(ROUNDS, 1e-3)


def test_false_alarm_rate_without_a_minimum_effect(outputs):
    """The hardest case: any difference counts (min_effect 0), at a level that many rounds can measure."""
    alarms = _false_alarms(outputs, alpha=0.05, min_effect=0.0)
    assert alarms <= _allowed(ROUNDS, 0.05)


@pytest.mark.parametrize("choose", [_one_step_above_the_largest, _exact_search])
def test_an_exit_calibrated_at_100_percent_is_not_a_false_alarm(outputs, choose):
    """100% left at exit 0 on the calibration split. With a threshold one float step above the largest
    entropy, a test split has a few samples above it: the one-sample test said p=0 (a warning in most rounds)."""
    alarms = _false_alarms(outputs, alpha=1e-3, min_effect=0.03, choose=choose, rounds=ROUNDS // 3)
    assert alarms <= _allowed(ROUNDS // 3, 1e-3)


@pytest.mark.parametrize("shift", ["noise", "inverted"])
def test_a_shifted_input_is_flagged(tiny_artifact, outputs, shift):
    from edgebranchy.data.splits import load_recorded
    from edgebranchy.runtime.full_chain import collect_device_outputs
    from edgebranchy.runtime.runner import EarlyExitRunner

    m = json.loads((tiny_artifact / "manifest.json").read_text())
    test = load_recorded(m["source"]["dataset"]).test
    x = test.x.astype(np.float64)
    x = np.clip(x + np.random.default_rng(1).normal(0, 60, x.shape), 0, 255) if shift == "noise" else 255 - x
    with EarlyExitRunner(tiny_artifact) as r:
        _, ents = collect_device_outputs(r.backend, r.artifact.preprocess(x.astype(np.uint8)), 2)
        thresholds = r.thresholds
    counts = np.bincount(assign_exits(np.stack(ents).T, thresholds), minlength=2)
    cal = m["calibration"]["validation"]
    d = exit_rate_drift(counts, cal["exit_fractions"], cal["n"])
    assert d.drifted and d.line().startswith("warning: exit rates drifted")
    # the same test on the unshifted test split: no warning
    plain = np.bincount(assign_exits(np.stack(outputs["test"][1]).T, thresholds), minlength=2)
    assert not exit_rate_drift(plain, cal["exit_fractions"], cal["n"]).drifted
