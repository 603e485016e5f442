"""The real Fashion-MNIST files, where a machine has them (the rest of the suite never needs them)."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.data import load_dataset
from edgebranchy.errors import EdgeBranchyError


def _real_or_skip():
    try:
        return load_dataset("fashion-mnist")
    except EdgeBranchyError as e:
        pytest.skip(f"needs the real Fashion-MNIST (apt-get install dataset-fashion-mnist, or "
                    f"EDGEBRANCHY_DATA=DIR with DIR/fashion-mnist); not installed here: {e}")


def test_real_fashion_mnist_shapes_and_labels():
    b = _real_or_skip()
    assert (len(b.train) + len(b.val), len(b.test)) == (60000, 10000)
    assert b.input_shape == (1, 28, 28) and b.train.x.dtype == np.uint8
    assert sorted(np.unique(b.test.y).tolist()) == list(range(10))
    assert np.bincount(b.test.y).tolist() == [1000] * 10  # the published test split is balanced
