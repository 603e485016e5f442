import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.rule import assign_exits, confident, confident_one

VALUES = st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0, 2.0, float("nan"), float("inf"), -float("inf")])


def loop_exits(e, thresholds):
    out = []
    for row in e:
        ex = len(row) - 1
        for k, t in enumerate(thresholds):
            v = row[k]
            if not math.isnan(v) and not math.isinf(v) and v < t:
                ex = k
                break
        out.append(ex)
    return out


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4).flatmap(lambda k: st.tuples(
    st.lists(st.lists(VALUES | st.floats(0, 3), min_size=k, max_size=k), min_size=0, max_size=12),
    st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.5, float("inf")]) | st.floats(0, 3),
             min_size=k - 1, max_size=k - 1),
    st.just(k))))
def test_assign_exits_matches_a_plain_loop(case):
    rows, thresholds, k = case
    e = np.array(rows, dtype=np.float64).reshape(len(rows), k)
    got = assign_exits(e, thresholds)
    assert got.dtype == np.int64
    assert got.tolist() == loop_exits(rows, thresholds)
    # the list-of-columns form gives the same answer
    assert assign_exits([e[:, j] for j in range(k)], thresholds).tolist() == got.tolist()


def test_rule_is_strict():
    e = np.array([[0.5, 0.0], [0.49, 0.0]])
    assert assign_exits(e, [0.5]).tolist() == [1, 0]


def test_non_finite_entropy_never_exits_early():
    e = np.array([[np.nan, np.nan, np.nan], [np.inf, np.nan, 0.0], [-np.inf, 0.0, 0.0]])
    assert assign_exits(e, [np.inf, np.inf]).tolist() == [2, 2, 1]
    assert confident(e[:, 0], np.inf).tolist() == [False, False, False]


def test_last_exit_entropy_is_ignored():
    e = np.array([[1.0, np.nan], [0.0, 5.0]])
    assert assign_exits(e, [0.5]).tolist() == [1, 0]


def test_confident_float32_against_float64_threshold():
    v = np.float32(0.1)
    t_exact = float(v)
    assert not confident(np.array([v]), t_exact)[0]
    assert confident(np.array([v]), float(np.nextafter(t_exact, np.inf)))[0]
    # a threshold between two float32 values is not rounded onto the entropy
    just_above = float(np.nextafter(np.float64(v), np.inf))
    assert confident(np.array([v], dtype=np.float32), just_above)[0]


def test_confident_matches_definition():
    e = np.array([0.0, 0.1, 0.2, np.nan, np.inf])
    assert confident(e, 0.2).tolist() == [True, True, False, False, False]
    assert confident(e, 0.0).tolist() == [False] * 5


def test_nan_threshold_raises():
    with pytest.raises(EdgeBranchyError, match="NaN"):
        assign_exits(np.zeros((2, 2)), [float("nan")])
    with pytest.raises(EdgeBranchyError, match="NaN"):
        confident(np.zeros(2), float("nan"))


def test_wrong_threshold_count_raises_with_counts():
    with pytest.raises(EdgeBranchyError, match="3 exits need 2 thresholds.*got 1"):
        assign_exits(np.zeros((4, 3)), [0.1])
    with pytest.raises(EdgeBranchyError):
        assign_exits(np.zeros((4, 3)), [0.1, 0.2, 0.3])


def test_bad_shapes_raise():
    with pytest.raises(EdgeBranchyError):
        assign_exits([np.zeros(3), np.zeros(4)], [0.1])
    with pytest.raises(EdgeBranchyError):
        assign_exits(np.zeros(3), [])
    with pytest.raises(EdgeBranchyError):
        assign_exits([], [])
    with pytest.raises(EdgeBranchyError):
        assign_exits(np.zeros((2, 2)), [None])


def test_single_exit_always_answers():
    assert assign_exits(np.zeros((3, 1)), []).tolist() == [0, 0, 0]


@settings(max_examples=100, deadline=None)
@given(VALUES | st.floats(0, 3, width=32), st.sampled_from([0.0, 0.1, 0.5, 2.0, float("inf")]) | st.floats(0, 3))
def test_confident_one_agrees_with_confident(e, t):
    assert confident_one(e, t) == bool(confident(np.array([e]), t)[0])
