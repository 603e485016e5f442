import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.temperature import fit_temperature, nll


def sample(t0, n=20000, c=5, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(n, c))
    p = np.exp(z / t0 - (z / t0).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    y = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(y, c - 1)


@pytest.mark.parametrize("t0", [0.5, 1.0, 2.5])
def test_recovers_known_temperature(t0):
    z, y = sample(t0)
    t = fit_temperature(z, y)
    assert abs(t / t0 - 1.0) < 0.05
    # it is a minimum of the validation NLL
    assert nll(z, y, t) <= min(nll(z, y, t * 1.05), nll(z, y, t / 1.05), nll(z, y, t0)) + 1e-12


def test_separable_data_goes_to_the_lower_bound():
    z = np.array([[5.0, 0.0], [0.0, 5.0], [3.0, 1.0]])
    y = np.array([0, 1, 0])
    assert fit_temperature(z, y, bounds=(0.05, 20.0)) == pytest.approx(0.05, rel=1e-5)


def test_labels_against_the_logits_push_temperature_up():
    z = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    y = np.array([0, 1, 1, 0])   # half wrong: the best softmax is flat
    assert fit_temperature(z, y, bounds=(0.1, 50.0)) == pytest.approx(50.0, rel=1e-5)


@pytest.mark.parametrize("logits,labels", [
    (np.array([[np.nan, 0.0]]), np.array([0])),
    (np.zeros((2, 3)), np.array([0, 3])),
    (np.zeros((2, 3)), np.array([0, -1])),
    (np.zeros((2, 3)), np.array([0])),
    (np.zeros((2, 3)), np.array([0.5, 1.0])),
    (np.zeros(3), np.array([0, 1, 2])),
    (np.zeros((0, 3)), np.zeros(0, dtype=int)),
])
def test_bad_inputs_raise(logits, labels):
    with pytest.raises(EdgeBranchyError):
        fit_temperature(logits, labels)


def test_bad_bounds_raise():
    with pytest.raises(EdgeBranchyError):
        fit_temperature(np.zeros((2, 2)), np.array([0, 1]), bounds=(2.0, 1.0))
    with pytest.raises(EdgeBranchyError):
        fit_temperature(np.zeros((2, 2)), np.array([0, 1]), bounds=(0.0, 1.0))
