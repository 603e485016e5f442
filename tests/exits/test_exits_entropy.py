import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.entropy import entropy, log_softmax


def logit_arrays(max_abs=1e4, min_c=2, max_c=7):
    shapes = st.tuples(st.integers(1, 6), st.integers(min_c, max_c))
    return shapes.flatmap(lambda s: hnp.arrays(
        np.float64, s, elements=st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False)))


def naive_entropy(x):
    # long double softmax of moderate logits, plainly written
    x = np.asarray(x, dtype=np.longdouble)
    out = []
    for row in x:
        e = np.exp(row)
        p = e / e.sum()
        out.append(float(-sum(pi * math.log(pi) for pi in p if pi > 0)))
    return np.array(out)


@settings(max_examples=100, deadline=None)
@given(logit_arrays())
def test_entropy_is_between_zero_and_log_c(x):
    h = entropy(x)
    assert h.dtype == np.float64 and h.shape == (x.shape[0],)
    assert np.all(np.isfinite(h))
    assert np.all(h >= 0.0)
    assert np.all(h <= math.log(x.shape[1]) + 1e-9)


@settings(max_examples=100, deadline=None)
@given(logit_arrays())
def test_normalised_entropy_is_in_unit_interval(x):
    h = entropy(x, normalize=True)
    assert np.all((h >= 0.0) & (h <= 1.0 + 1e-9))
    np.testing.assert_allclose(h * math.log(x.shape[1]), entropy(x), rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(logit_arrays(max_abs=30.0))
def test_entropy_matches_plain_formula(x):
    np.testing.assert_allclose(entropy(x), naive_entropy(x), rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(logit_arrays(max_abs=30.0), st.floats(0.1, 10.0))
def test_temperature_divides_logits(x, t):
    np.testing.assert_allclose(entropy(x, temperature=t), entropy(x / t), rtol=1e-12, atol=1e-12)


def test_stable_at_large_magnitude():
    c = 10
    one_hot = np.full((3, c), -1e4)
    one_hot[np.arange(3), [0, 4, 9]] = 1e4
    h = entropy(one_hot)
    assert np.all(np.isfinite(h)) and np.all(h >= 0.0) and np.all(h < 1e-12)
    flat = np.full((2, c), 1e4)
    np.testing.assert_allclose(entropy(flat), math.log(c), rtol=1e-12)
    np.testing.assert_allclose(entropy(flat, normalize=True), 1.0, rtol=1e-12)
    two = np.array([[1e4, 1e4, -1e4]])
    np.testing.assert_allclose(entropy(two), math.log(2), rtol=1e-12)
    huge = np.array([[1e300, -1e300, 0.0]])   # the shift overflows to -inf: still no NaN
    assert entropy(huge)[0] == 0.0


def test_non_finite_logits_give_nan_for_that_sample_only():
    x = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 0.0],
                  [-np.inf, 0.0, 0.0], [0.5, 0.5, 0.5]])
    h = entropy(x)
    assert np.isnan(h[1]) and np.isnan(h[2]) and np.isnan(h[3])
    np.testing.assert_allclose(h[[0, 4]], entropy(x[[0, 4]]))
    np.testing.assert_allclose(h[4], math.log(3))


def test_float32_input_is_computed_in_float64():
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    h = entropy(x)
    assert h.dtype == np.float64
    np.testing.assert_allclose(h, naive_entropy(x.astype(np.float64)), rtol=1e-12)


def test_empty_batch():
    assert entropy(np.zeros((0, 4))).shape == (0,)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 3, 4)), np.zeros((3, 1)), [["a", "b"]]])
def test_bad_shapes_raise(bad):
    with pytest.raises(EdgeBranchyError):
        entropy(bad)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_bad_temperature_raises(t):
    with pytest.raises(EdgeBranchyError):
        entropy(np.zeros((2, 3)), temperature=t)


@settings(max_examples=100, deadline=None)
@given(logit_arrays())
def test_log_softmax_is_normalised_and_finite(x):
    lp = log_softmax(x, axis=1)
    assert np.all(np.isfinite(lp)) and np.all(lp <= 0.0)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-12)
    # invariant to a shift of all logits
    np.testing.assert_allclose(log_softmax(x - 7.0, axis=1), lp, atol=1e-9)


def test_log_softmax_other_axis():
    x = np.array([[1.0, 5.0], [2.0, -3.0], [0.0, 0.0]])
    np.testing.assert_allclose(log_softmax(x, axis=0), log_softmax(x.T, axis=1).T)


def test_exits_package_does_not_import_torch():
    code = ("import sys; import edgebranchy.exits, edgebranchy.exits.calibrate, edgebranchy.exits.table; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
