"""Named datasets, the train/validation split and normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.data import dataset_names, load_dataset
from edgebranchy.data.datasets import FASHION_CLASSES, Normalization, normalization_of, split_train_val, synthetic
from edgebranchy.errors import EdgeBranchyError

from data_idx_files import write_idx, write_mnist_dir


def _rows(x: np.ndarray) -> list[bytes]:
    return sorted(r.tobytes() for r in x.reshape(len(x), -1))


def test_digits():
    b = load_dataset("digits")
    assert b.input_shape == (1, 8, 8) and b.classes == [str(i) for i in range(10)]
    assert len(b.train) + len(b.val) == 1797 - 360 and len(b.test) == 360
    assert len(b.val) == (1797 - 360) // 10
    assert b.train.x.dtype == np.uint8 and b.train.x.max() <= 16 and b.norm.scale == 16.0
    assert set(np.unique(b.train.y)) == set(range(10))
    assert b.describe()["input_shape"] == [1, 8, 8]


def test_synthetic():
    b = load_dataset("synthetic")
    assert b.input_shape == (1, 28, 28) and len(b.classes) == 10
    assert (len(b.train), len(b.val), len(b.test)) == (1800, 200, 500)
    assert b.train.y.dtype == np.int64 and set(np.unique(b.train.y)) == set(range(10))
    c = load_dataset("synthetic", synthetic_shape=(3, 32, 32), limit=100)
    assert c.input_shape == (3, 32, 32) and len(c.train) + len(c.val) == 100 and len(c.test) == 100
    assert len(c.norm.mean) == 3


def test_synthetic_is_seeded():
    a, b, c = synthetic(seed=3), synthetic(seed=3), synthetic(seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_split_train_val():
    tr, va = split_train_val(100, 15, seed=0)
    tr2, va2 = split_train_val(100, 15, seed=0)
    tr3, va3 = split_train_val(100, 15, seed=1)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, va3)
    for t, v in ((tr, va), (tr3, va3)):
        assert len(v) == 15 and len(t) == 85
        assert not set(t.tolist()) & set(v.tolist())
        assert sorted(t.tolist() + v.tolist()) == list(range(100))
    for bad in (0, 100, -1, 101):
        with pytest.raises(EdgeBranchyError, match="validation size"):
            split_train_val(100, bad, seed=0)


def test_bundle_split_determinism():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.val.y, b.val.y)
    assert a.norm == b.norm
    assert _rows(a.val.x) != _rows(c.val.x)
    # the test split is fixed; train + val cover the same pool whatever the seed
    np.testing.assert_array_equal(a.test.x, c.test.x)
    assert _rows(np.concatenate([a.train.x, a.val.x])) == _rows(np.concatenate([c.train.x, c.val.x]))
    assert len(a.val) == len(c.val)


def test_val_size_and_bad_val_size():
    b = load_dataset("digits", val_size=100)
    assert len(b.val) == 100 and len(b.train) == 1437 - 100
    with pytest.raises(EdgeBranchyError, match="validation size"):
        load_dataset("digits", val_size=5000)


def test_normalisation_comes_from_the_train_split():
    b = load_dataset("digits")
    xf = b.train.x_float(b.norm)
    assert xf.dtype == np.float32 and xf.shape == b.train.x.shape
    assert abs(float(xf.mean())) < 1e-4 and float(xf.std()) == pytest.approx(1.0, abs=1e-4)
    ref = normalization_of(b.train.x, 16.0)
    assert b.norm.mean == pytest.approx(ref.mean, abs=1e-12) and b.norm.std == pytest.approx(ref.std, abs=1e-12)
    # not from train + val, nor from the test split
    both = normalization_of(np.concatenate([b.train.x, b.val.x]), 16.0)
    assert b.norm.mean[0] != both.mean[0]
    # validation and test use the same transform (they are not re-centred)
    assert abs(float(b.test.x_float(b.norm).mean())) > 1e-6


def test_normalization_round_trip_and_constant_channel():
    n = Normalization(255.0, [0.5, 0.25, 0.1], [0.2, 0.3, 0.4])
    assert Normalization.from_dict(n.to_dict()) == n
    x = np.full((2, 3, 2, 2), 255, np.uint8)
    np.testing.assert_allclose(n.apply(x)[:, 0], (1.0 - 0.5) / 0.2, rtol=1e-6)
    flat = normalization_of(np.zeros((4, 1, 3, 3), np.uint8), 255.0)
    assert flat.std == [1.0]  # no division by zero for a constant channel


def test_fashion_mnist_from_a_directory(tmp_path):
    arrays = write_mnist_dir(tmp_path, n_train=40, n_test=12)
    b = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert b.input_shape == (1, 28, 28) and b.classes == FASHION_CLASSES
    assert (len(b.train), len(b.val), len(b.test)) == (36, 4, 12)
    assert b.source == str(tmp_path) and b.norm.scale == 255.0
    np.testing.assert_array_equal(b.test.x[:, 0], arrays["t10k-images-idx3-ubyte"])
    pool = np.concatenate([b.train.x, b.val.x])[:, 0]
    assert _rows(pool) == _rows(arrays["train-images-idx3-ubyte"])
    m = load_dataset("mnist", data_dir=tmp_path, limit=20)
    assert m.classes == [str(i) for i in range(10)] and len(m.train) + len(m.val) == 20 and len(m.test) == 12


def test_fashion_mnist_from_env_dir(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path / "fashion-mnist", n_train=20, n_test=5)
    monkeypatch.setenv("EDGEBRANCHY_DATA", str(tmp_path))
    assert len(load_dataset("fashion-mnist").test) == 5


def test_missing_data_dir(tmp_path):
    with pytest.raises(EdgeBranchyError, match="not found"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "absent")
    with pytest.raises(EdgeBranchyError, match="missing train-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=tmp_path)


def test_unknown_dataset():
    with pytest.raises(EdgeBranchyError, match="unknown dataset 'imagenet'") as e:
        load_dataset("imagenet")
    for name in dataset_names():
        assert name in str(e.value)


def test_idx_labels_outside_the_classes(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0] * 11 + [200], np.uint8))
    with pytest.raises(EdgeBranchyError, match="label"):
        load_dataset("mnist", data_dir=tmp_path)


def test_negative_limit_is_refused():
    with pytest.raises(EdgeBranchyError):
        load_dataset("synthetic", limit=-5)
