import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits import calibrate as cal_module
from edgebranchy.exits import pair as pair_module
from edgebranchy.exits.calibrate import calibrate, evaluate
from edgebranchy.exits.entropy import entropy

SLACK = 1e-9


# ----------------------------------------------------------------------------- brute force

def brute_points(logits, labels, costs, normalize=False, temperatures=None):
    """(correct, total cost, thresholds) for every tuple of candidate thresholds, by plain loops."""
    k = len(logits)
    temps = temperatures or [1.0] * k
    ents = [entropy(x, normalize=normalize, temperature=t).tolist() for x, t in zip(logits, temps)]
    right = [[bool(np.all(np.isfinite(row))) and int(np.argmax(row)) == int(y) for row, y in zip(x, labels)]
             for x in logits]
    cands = []
    for e in ents[:-1]:
        values = sorted({v for v in e if math.isfinite(v)})
        cands.append([0.0] + [float(np.nextafter(v, math.inf)) for v in values])
    out = []
    for tup in itertools.product(*cands):
        correct, cost = 0, 0.0
        for i in range(len(labels)):
            ex = k - 1
            for j, t in enumerate(tup):
                if math.isfinite(ents[j][i]) and ents[j][i] < t:
                    ex = j
                    break
            correct += right[ex][i]
            cost += sum(costs[: ex + 1])
        out.append((correct, cost, tup))
    return out


def brute_best(points, n, baseline, drop=None, budget=None, reference=None):
    if drop is not None:
        ok = [p for p in points if p[0] / n >= reference - drop / 100 - SLACK]
        return min(ok, key=lambda p: (p[1], -p[0])) if ok else None
    ok = [p for p in points if p[1] / n <= budget * baseline * (1 + SLACK)]
    return max(ok, key=lambda p: (p[0], -p[1])) if ok else None


def brute_frontier(points):
    pairs = {(c, cost) for c, cost, _ in points}
    return {(c, cost) for c, cost in pairs
            if not any(c2 >= c and k2 <= cost and (c2 > c or k2 < cost) for c2, k2 in pairs)}


@st.composite
def problems(draw, k_exits):
    n = draw(st.integers(1, 10))
    c = 3
    labels = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    logits = []
    for _ in range(k_exits):
        # few distinct small integer logits: many equal entropies
        x = np.array(draw(st.lists(st.lists(st.integers(-2, 2), min_size=c, max_size=c),
                                   min_size=n, max_size=n)), dtype=np.float64)
        if draw(st.booleans()) and n > 1:
            x[draw(st.integers(0, n - 1)), draw(st.integers(0, c - 1))] = np.nan
        logits.append(x)
    costs = draw(st.lists(st.integers(0, 5), min_size=k_exits, max_size=k_exits))
    baseline = draw(st.integers(1, 12))
    return logits, labels, [float(x) for x in costs], float(baseline)


def check_against_brute(problem, drop, budget):
    logits, labels, costs, baseline = problem
    n = len(labels)
    points = brute_points(logits, labels, costs)
    reference = float(np.mean([bool(np.all(np.isfinite(r))) and np.argmax(r) == y
                               for r, y in zip(logits[-1], labels)]))
    best = brute_best(points, n, baseline, drop=drop, budget=budget, reference=reference)
    kwargs = {"max_accuracy_drop": drop} if drop is not None else {"budget": budget}
    if best is None:
        with pytest.raises(EdgeBranchyError, match="achievable"):
            calibrate(logits, labels, costs, baseline, **kwargs)
        return
    r = calibrate(logits, labels, costs, baseline, **kwargs)
    assert r.accuracy == best[0] / n
    assert r.cost == pytest.approx(best[1] / n, rel=1e-12, abs=1e-12)
    # the chosen thresholds really give that on the data, and meet the target
    ev = evaluate(logits, labels, r.thresholds, costs, baseline)
    assert ev["accuracy"] == r.accuracy and ev["cost"] == pytest.approx(r.cost, rel=1e-12, abs=1e-12)
    if drop is not None:
        assert r.accuracy >= reference - drop / 100 - SLACK
    else:
        assert r.cost <= budget * baseline * (1 + SLACK)
    # the frontier is exactly the brute-force Pareto frontier
    got = {(round(p["accuracy"] * n), p["relative_cost"] * baseline * n) for p in r.frontier}
    want = brute_frontier(points)
    assert len(got) == len(r.frontier) == len(want)
    for (c1, k1), (c2, k2) in zip(sorted(got), sorted(want)):
        assert c1 == c2 and k1 == pytest.approx(k2, rel=1e-12, abs=1e-12)


TARGETS = st.one_of(st.tuples(st.floats(0.0, 40.0), st.none()), st.tuples(st.none(), st.floats(0.05, 1.5)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(2), TARGETS)
def test_two_exits_equal_brute_force(problem, target):
    check_against_brute(problem, *target)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(3), TARGETS)
def test_three_exits_equal_brute_force(problem, target):
    check_against_brute(problem, *target)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(4), TARGETS)
def test_four_exits_small_problems_are_exhaustive_and_exact(problem, target):
    check_against_brute(problem, *target)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_small_blocks_give_the_same_answer(monkeypatch, chunk):
    """Force many blocks per pair search so that the cross-block filter is exercised."""
    rng = np.random.default_rng(3)
    logits, labels, costs, baseline = random_problem(rng, n=9, k=3, c=3, integer=True)
    want = calibrate(logits, labels, costs, baseline, budget=0.7)
    monkeypatch.setattr(pair_module, "CHUNK_ELEMENTS", chunk)
    got = calibrate(logits, labels, costs, baseline, budget=0.7)
    assert (got.accuracy, got.cost, got.thresholds) == (want.accuracy, want.cost, want.thresholds)
    assert got.frontier == want.frontier
    points = brute_points(logits, labels, costs)
    assert len(got.frontier) == len(brute_frontier(points))


# ----------------------------------------------------------------------------- larger problems

def random_problem(rng, n, k, c=10, integer=False):
    labels = rng.integers(0, c, n)
    logits = []
    for j in range(k):
        z = rng.normal(size=(n, c)) * 2
        z[np.arange(n), labels] += (1 + j) * rng.uniform(0, 3, n)
        if integer:
            z = np.round(z)
        logits.append(z)
    costs = [float(x) for x in rng.integers(1, 6, k)]
    return logits, labels, costs, float(sum(costs))


def check_frontier_is_real(r, logits, labels, costs, baseline):
    prev_cost, prev_acc = -math.inf, -math.inf
    for p in r.frontier:
        assert p["relative_cost"] > prev_cost and p["accuracy"] > prev_acc
        prev_cost, prev_acc = p["relative_cost"], p["accuracy"]
        assert all(math.isfinite(t) and t >= 0 for t in p["thresholds"])
    sample = r.frontier[:: max(1, len(r.frontier) // 25)] + [r.frontier[-1]]
    for p in sample:
        ev = evaluate(logits, labels, p["thresholds"], costs, baseline)
        assert ev["accuracy"] == p["accuracy"]
        assert ev["relative_cost"] == pytest.approx(p["relative_cost"], rel=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_medium_problem_frontier_is_consistent_and_thinned(k):
    rng = np.random.default_rng(k)
    logits, labels, costs, baseline = random_problem(rng, n=1500, k=k)
    r = calibrate(logits, labels, costs, baseline, max_accuracy_drop=1.0)
    assert 3 <= len(r.frontier) <= 200
    chosen = {"thresholds": r.thresholds, "accuracy": r.accuracy, "relative_cost": r.relative_cost}
    assert chosen in r.frontier
    check_frontier_is_real(r, logits, labels, costs, baseline)
    # the end points: everyone at the last exit is never cheaper than the cheapest point
    assert r.frontier[0]["relative_cost"] <= costs[0] / baseline + 1e-12 or r.frontier[0]["accuracy"] > 0
    assert r.accuracy >= r.reference_accuracy - 0.01 - SLACK
    assert sum(r.exit_fractions) == pytest.approx(1.0)
    # the frontier answers the budget question too: the same point for its own cost
    b = calibrate(logits, labels, costs, baseline, budget=r.relative_cost)
    assert b.accuracy >= r.accuracy and b.cost <= r.cost * (1 + 1e-9)


def test_more_than_three_exits_by_coordinate_descent(monkeypatch):
    monkeypatch.setattr(cal_module, "_EXHAUSTIVE_COMBOS", 0)
    rng = np.random.default_rng(7)
    logits, labels, costs, baseline = random_problem(rng, n=300, k=5)
    r = calibrate(logits, labels, costs, baseline, max_accuracy_drop=2.0)
    assert not r.exact and len(r.thresholds) == 4
    assert r.accuracy >= r.reference_accuracy - 0.02 - SLACK
    # no worse than sending everybody to the last exit, or than the best single early exit
    assert r.cost <= sum(costs)
    for i in range(4):
        only_i = calibrate([logits[i], logits[-1]], labels, [sum(costs[: i + 1]), sum(costs[i + 1:])],
                           baseline, max_accuracy_drop=2.0, reference_accuracy=r.reference_accuracy)
        assert r.cost <= only_i.cost + 1e-9
    check_frontier_is_real(r, logits, labels, costs, baseline)


def test_reference_accuracy_and_record():
    rng = np.random.default_rng(11)
    logits, labels, costs, baseline = random_problem(rng, n=400, k=3)
    r = calibrate(logits, labels, costs, baseline, max_accuracy_drop=0.5, reference_accuracy=0.6,
                  temperatures=[1.5, 1.0, 1.0], normalize=True)
    assert r.reference == "baseline" and r.reference_accuracy == 0.6
    d = r.to_dict()
    for key in ("method", "target", "reference", "cost_source", "segment_costs", "baseline_cost", "thresholds",
                "temperatures", "validation", "test", "frontier"):
        assert key in d
    assert d["method"] == "max-accuracy-drop" and d["target"] == 0.5
    assert d["segment_costs"] == costs and d["baseline_cost"] == baseline
    assert d["temperatures"] == [1.5, 1.0, 1.0]
    assert set(d["validation"]) == {"accuracy", "cost", "relative_cost", "exit_fractions", "n"}
    assert d["validation"]["n"] == 400
    json.dumps(d, allow_nan=False)   # finite floats only
    assert r.accuracy >= 0.6 - 0.005 - SLACK
    b = calibrate(logits, labels, costs, baseline, budget=0.5)
    assert b.to_dict()["method"] == "budget" and b.reference == "final-exit"
    assert b.relative_cost <= 0.5 * (1 + SLACK)


def test_temperatures_and_normalisation_act_on_entropy():
    rng = np.random.default_rng(5)
    logits, labels, costs, baseline = random_problem(rng, n=300, k=3)
    plain = calibrate([logits[0] / 2.0, logits[1], logits[2] / 0.5], labels, costs, baseline, budget=0.6)
    scaled = calibrate(logits, labels, costs, baseline, budget=0.6, temperatures=[2.0, 1.0, 0.5])
    assert scaled.thresholds == plain.thresholds
    assert (scaled.accuracy, scaled.cost) == (plain.accuracy, plain.cost)
    # dividing every exit's entropy by ln C changes units, not the choice
    normed = calibrate(logits, labels, costs, baseline, budget=0.6, normalize=True)
    raw = calibrate(logits, labels, costs, baseline, budget=0.6)
    assert (normed.accuracy, normed.cost) == (raw.accuracy, raw.cost)
    # (thresholds are float32 values midway between entropies: equal up to float32 rounding)
    assert normed.thresholds[0] == pytest.approx(raw.thresholds[0] / math.log(10), rel=2 ** -23)


def test_nan_logits_never_leave_early_in_calibration():
    labels = np.array([0, 0, 0, 1])
    early = np.array([[5.0, 0.0], [np.nan, 0.0], [4.0, 0.0], [0.0, 3.0]])
    late = np.array([[5.0, 0.0], [5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    r = calibrate([early, late], labels, [1.0, 1.0], 2.0, budget=0.75 + 1e-12)
    ev = evaluate([early, late], labels, r.thresholds, [1.0, 1.0], 2.0)
    assert r.exit_fractions == ev["exit_fractions"] == [0.75, 0.25]
    assert r.accuracy == 1.0


def test_evaluate_counts_exits():
    labels = np.array([0, 1, 1])
    e0 = np.array([[9.0, 0.0], [0.0, 0.1], [0.0, 9.0]])
    e1 = np.array([[9.0, 0.0], [0.0, 9.0], [0.0, 9.0]])
    ev = evaluate([e0, e1], labels, [0.01], [1.0, 3.0], 4.0)
    assert ev == {"accuracy": 1.0, "cost": (1 + 4 + 1) / 3, "relative_cost": (6 / 3) / 4,
                  "exit_fractions": [2 / 3, 1 / 3], "n": 3}
    with pytest.raises(EdgeBranchyError):
        evaluate([e0, e1], labels, [0.01, 0.02], [1.0, 3.0], 4.0)
    with pytest.raises(EdgeBranchyError):
        evaluate([e0, e1], labels, [float("nan")], [1.0, 3.0], 4.0)


# ----------------------------------------------------------------------------- errors

def test_infeasible_targets_say_what_is_achievable():
    rng = np.random.default_rng(2)
    logits, labels, costs, baseline = random_problem(rng, n=200, k=3)
    with pytest.raises(EdgeBranchyError, match=r"best achievable on this split is \d+\.\d\d%"):
        calibrate(logits, labels, costs, baseline, max_accuracy_drop=0.0, reference_accuracy=1.0)
    cheapest = costs[0] / baseline
    with pytest.raises(EdgeBranchyError, match=f"cheapest achievable is {100 * cheapest:.2f}%"):
        calibrate(logits, labels, costs, baseline, budget=cheapest * 0.9)


GOOD = ([np.zeros((3, 2)), np.zeros((3, 2))], np.array([0, 1, 0]), [1.0, 1.0], 2.0)


@pytest.mark.parametrize("change,match", [
    ({"logits": [np.zeros((3, 2))]}, "at least 2 exits"),
    ({"logits": [np.zeros((3, 2)), np.zeros((4, 2))]}, "samples"),
    ({"logits": np.zeros((3, 2))}, "one"),
    ({"logits": [np.zeros((3, 2)), np.zeros(3)]}, "shape"),
    ({"labels": np.array([0, 1])}, "labels"),
    ({"labels": np.array([0, 2, 0])}, "labels"),
    ({"labels": np.array([0, -1, 0])}, "labels"),
    ({"costs": [1.0]}, "segment costs"),
    ({"costs": [1.0, float("nan")]}, "finite"),
    ({"costs": [1.0, -1.0]}, ">= 0"),
    ({"baseline": 0.0}, "baseline_cost"),
    ({"baseline": float("nan")}, "baseline_cost"),
    ({"kwargs": {"max_accuracy_drop": 1.0, "budget": 0.5}}, "exactly one"),
    ({"kwargs": {}}, "exactly one"),
    ({"kwargs": {"budget": 0.0}}, "budget"),
    ({"kwargs": {"budget": float("nan")}}, "budget"),
    ({"kwargs": {"max_accuracy_drop": -1.0}}, "max_accuracy_drop"),
    ({"kwargs": {"max_accuracy_drop": 1.0, "reference_accuracy": 99.0}}, "reference_accuracy"),
    ({"kwargs": {"budget": 0.5, "temperatures": [1.0]}}, "temperatures"),
    ({"kwargs": {"budget": 0.5, "temperatures": [1.0, 0.0]}}, "temperature"),
])
def test_bad_inputs_raise(change, match):
    logits, labels, costs, baseline = GOOD
    logits = change.get("logits", logits)
    labels = change.get("labels", labels)
    costs = change.get("costs", costs)
    baseline = change.get("baseline", baseline)
    kwargs = change.get("kwargs", {"budget": 1.0})
    with pytest.raises(EdgeBranchyError, match=match):
        calibrate(logits, labels, costs, baseline, **kwargs)
