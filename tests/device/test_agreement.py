"""The rule of `doctor ARTIFACT` (device/agreement.py), both sides of each part: numbers against the precision's
tolerance, an exit flip against the entropy band of its threshold, a label flip against twice the logit band."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgebranchy.exits.entropy import entropy
from edgebranchy.exits.rule import assign_exits
from edgebranchy.device.agreement import RTOL, Outputs, compare

LN10 = math.log(10)


def outputs(logits, thresholds, exits=None) -> Outputs:
    """What a backend would report for these per-exit logits; `exits` overrides the runner's decisions."""
    logits = [np.asarray(z, dtype=np.float64) for z in logits]
    ents = [entropy(z) for z in logits]
    ex = assign_exits(ents, thresholds) if exits is None else np.asarray(exits)
    idx = np.arange(len(ex))
    ans_z = np.stack([logits[k][i] for i, k in zip(idx, ex)])
    ans_e = np.array([ents[k][i] for i, k in zip(idx, ex)])
    return Outputs(logits, ents, ans_z.argmax(1), ex, ans_e, ans_z)


def base_logits(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 3, (n, 10)), rng.normal(0, 3, (n, 10))]


def test_identical_outputs_agree_exactly():
    z = base_logits()
    t = [float(np.median(entropy(z[0])))]
    r = compare(outputs(z, t), outputs(z, t), t, RTOL["fp32"], LN10)
    assert r["passed"] and r["samples"] == [] and all(row["identical"] for row in r["exits"])
    assert r["labels_equal"] == r["exits_equal"] == 40


@pytest.mark.parametrize("rel,precision,within", [(0.5e-2, "fp16", True), (2e-2, "fp16", False),
                                                  (0.5e-4, "fp32", True), (2e-4, "fp32", False)])
def test_logit_differences_against_the_precisions_tolerance(rel, precision, within):
    z = base_logits()
    scale = np.abs(z[1]).max()
    cz = [z[0].copy(), z[1].copy()]
    i = int(np.argmax(np.abs(z[1]).max(1)))
    j = int(np.argmax(z[1][i]))
    cz[1][i, j] += rel * scale  # the top logit grows: the label does not change
    t = [0.0]  # nobody leaves early: only the numbers are judged
    row = compare(outputs(z, t), outputs(cz, t), t, RTOL[precision], LN10)["exits"][1]
    assert row["max_abs_logit_diff"] == pytest.approx(rel * scale)
    assert row["within"] is within


def _two_samples_near(t: float, gap: float):
    """Exit-0 logits of two samples whose entropies lie `gap` below and above `t` (found by bisection on a scale)."""
    direction = np.array([4.0, 1.0, 0, 0, 0, 0, 0, 0, 0, 0])

    def at(h):
        lo, hi = 0.0, 50.0
        for _ in range(200):
            mid = (lo + hi) / 2
            (lo, hi) = (mid, hi) if entropy(direction[None] * mid)[0] > h else (lo, mid)
        return direction * hi

    return np.stack([at(t - gap), at(t + gap)])


def test_an_exit_flip_within_the_entropy_band_is_precision_and_one_beyond_it_is_not():
    t = 1.0
    ref0 = _two_samples_near(t, 1e-4)  # sample 0 just below the threshold, sample 1 just above
    cand0 = ref0[[1, 0]]              # the candidate sees each one's entropy on the other side: both flip
    last = np.eye(10)[[3, 4]] * 5
    ref, cand = outputs([ref0, last], [t]), outputs([cand0, last], [t])
    r = compare(ref, cand, [t], RTOL["fp16"], LN10)
    assert [s["kind"] for s in r["samples"]] == ["exit", "exit"]
    for s in r["samples"]:
        assert s["distance"] == pytest.approx(1e-4, rel=1e-3) and s["distance"] <= s["band"]
        assert s["explained"]
    assert r["passed"] and r["exits"][0]["entropy_band"] == pytest.approx(2e-4, rel=1e-3)
    # the same numbers, but the candidate's runner sent sample 1 on though its own entropy says leave:
    # an exit difference that nothing in the numbers explains
    far = _two_samples_near(t, 0.3)
    ref, cand = outputs([far, last], [t]), outputs([far, last], [t], exits=[1, 1])
    r = compare(ref, cand, [t], RTOL["fp16"], LN10)
    (s,) = r["samples"]
    assert s["index"] == 0 and s["distance"] == pytest.approx(0.3, rel=1e-3) and s["band"] == 0
    assert not s["explained"] and not r["passed"] and r["unexplained"] == 1


def test_the_band_is_at_most_the_tolerance():
    """A broken candidate (entropies off by 0.5 nats) does not widen the band: a flip 0.1 from the threshold is
    beyond fp16's 0.023, one 0.01 from it is within (and the run fails on its numbers anyway)."""
    t = 1.0
    ref0 = np.concatenate([_two_samples_near(t, 0.1)[:1], _two_samples_near(t, 0.01)[:1],
                           _two_samples_near(t, 0.5)[1:]])
    cand0 = np.concatenate([_two_samples_near(t, 0.1)[1:], _two_samples_near(t, 0.01)[1:],
                            _two_samples_near(t, 0.5)[:1]])
    last = np.eye(10)[[1, 2, 3]] * 5
    r = compare(outputs([ref0, last], [t]), outputs([cand0, last], [t]), [t], RTOL["fp16"], LN10)
    band = r["exits"][0]["entropy_band"]
    assert band == pytest.approx(RTOL["fp16"] * LN10) and r["exits"][0]["max_abs_entropy_diff"] > 0.9
    verdict = {s["index"]: s["explained"] for s in r["samples"]}
    assert verdict == {0: False, 1: True, 2: False} and not r["passed"]


@pytest.mark.parametrize("margin,explained", [(0.002, True), (0.5, False)])
def test_a_label_flip_at_the_same_exit_against_twice_the_logit_band(margin, explained):
    z1 = np.zeros((2, 10))
    z1[:, 0] = 10
    z1[0, 1] = 10 - margin           # sample 0: top-2 margin `margin`
    c1 = z1.copy()
    c1[0, 0] -= 0.01                 # the candidate moves two logits by 0.01 each (the observed band)
    c1[0, 1] += 0.01
    c1[1, 0] -= 0.01
    z0 = np.tile(np.linspace(0, 0.1, 10), (2, 1))  # nobody leaves at exit 0
    t = [0.5]
    r = compare(outputs([z0, z1], t), outputs([z0, c1], t), t, RTOL["fp16"], LN10)
    assert r["exits"][1]["logit_band"] == pytest.approx(0.01)
    if margin < 0.02:
        (s,) = r["samples"]
        assert s["kind"] == "label" and s["margin"] == pytest.approx(margin) and s["explained"] is explained
    else:  # a margin of 0.5 cannot flip with a band of 0.01: the label stays, no sample differs
        assert r["samples"] == [] and r["passed"]
        c1[0, 1] += 0.6              # ... unless the candidate moves one logit far: beyond the tolerance, unexplained
        r = compare(outputs([z0, z1], t), outputs([z0, c1], t), t, RTOL["fp16"], LN10)
        (s,) = r["samples"]
        assert s["kind"] == "label" and not s["explained"] and not r["passed"]


def test_non_finite_outputs_are_never_explained():
    z = base_logits()
    t = [float(np.median(entropy(z[0])))]
    ref = outputs(z, t)
    cand = outputs(z, t)
    cand.entropy[0] = cand.entropy[0].copy()
    cand.entropy[0][3] = np.nan
    r = compare(ref, cand, t, RTOL["fp16"], LN10)
    assert math.isinf(r["exits"][0]["max_abs_entropy_diff"]) and not r["exits"][0]["within"] and not r["passed"]


def test_accuracies_and_exit_counts_are_what_the_answers_say():
    z = base_logits()
    t = [float(np.median(entropy(z[0])))]
    ref = outputs(z, t)
    y = ref.labels.copy()
    y[:10] = (y[:10] + 1) % 10
    r = compare(ref, outputs(z, t), t, RTOL["fp32"], LN10, y=y)
    assert r["accuracy"] == {"reference": 0.75, "candidate": 0.75}
    assert r["exit_counts"]["reference"] == np.bincount(ref.exits, minlength=2).tolist()
    assert sum(r["exit_counts"]["candidate"]) == 40


def test_non_finite_logits_fail_even_where_they_set_the_tolerance():
    """An infinite logit in the reference makes the tolerance (rtol x max |logit|) infinite: it must still fail."""
    z = base_logits()
    t = [0.0]
    bad = [z[0], z[1].copy()]
    bad[1][0, 0] = np.inf
    good = outputs(z, t)
    broken = outputs(bad, t)
    broken.entropy, broken.answer_entropy = good.entropy, good.answer_entropy  # only the logits are off
    for ref, cand in ((broken, outputs(z, t)), (outputs(z, t), broken)):
        r = compare(ref, cand, t, RTOL["fp16"], LN10)
        assert not r["exits"][1]["within"] and not r["passed"]
    r = compare(outputs(z, t), outputs(z, t), t, RTOL["fp16"], LN10)
    assert r["passed"]
