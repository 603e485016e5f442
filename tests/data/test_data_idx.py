"""The IDX reader (MNIST / Fashion-MNIST) on files written here, good and damaged."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from edgebranchy.data.idx import load_idx_dir, read_idx
from edgebranchy.errors import EdgeBranchyError

from data_idx_files import idx_bytes, write_idx, write_mnist_dir


@pytest.fixture
def images():
    return np.random.default_rng(1).integers(0, 256, (7, 5, 4), dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_good_file(tmp_path, images, gz):
    p = write_idx(tmp_path / "x-idx3-ubyte", images, gz=gz)
    x = read_idx(p)
    assert x.dtype == np.uint8 and x.shape == (7, 5, 4)
    np.testing.assert_array_equal(x, images)
    assert x.flags.writeable  # a copy, not a view of the file buffer


def test_read_labels_1d(tmp_path):
    y = read_idx(write_idx(tmp_path / "y", np.array([3, 1, 4, 1, 5], np.uint8)))
    assert y.shape == (5,) and y.tolist() == [3, 1, 4, 1, 5]


def _raises_naming(path, match):
    ctx = pytest.raises(EdgeBranchyError, match=match)

    class _C:
        def __enter__(self):
            self.info = ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            out = ctx.__exit__(*exc)
            assert str(path) in str(self.info.value), f"message does not name the file: {self.info.value}"
            return out

    return _C()


def test_truncated_data(tmp_path, images):
    p = tmp_path / "trunc"
    p.write_bytes(idx_bytes(images)[:-10])
    with _raises_naming(p, "truncated"):
        read_idx(p)


def test_truncated_header(tmp_path, images):
    p = tmp_path / "trunc-header"
    p.write_bytes(idx_bytes(images)[:9])
    with _raises_naming(p, "truncated"):
        read_idx(p)


def test_truncated_gzip(tmp_path, images):
    p = tmp_path / "trunc.gz"
    z = gzip.compress(idx_bytes(images))
    p.write_bytes(z[: len(z) // 2])
    with _raises_naming(p, "gzip"):
        read_idx(p)


def test_corrupt_gzip_stream(tmp_path):
    """Damage inside the deflate stream (zlib.error, not OSError) is reported too."""
    arr = np.random.default_rng(0).integers(0, 256, (20, 10, 10), dtype=np.uint8)
    z = bytearray(gzip.compress(idx_bytes(arr)))
    for i in range(12, 40):
        z[i] ^= 0xA5
    p = tmp_path / "corrupt.gz"
    p.write_bytes(bytes(z))
    with _raises_naming(p, "gzip"):
        read_idx(p)


def test_bad_magic(tmp_path, images):
    p = tmp_path / "magic"
    p.write_bytes(b"\x50\x4b" + idx_bytes(images)[2:])
    with _raises_naming(p, "magic"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x00" + idx_bytes(images)[4:])  # zero dimensions
    with _raises_naming(p, "magic"):
        read_idx(p)


def test_wrong_dtype_byte(tmp_path, images):
    p = tmp_path / "float"
    p.write_bytes(idx_bytes(images, dtype_byte=0x0D))
    with _raises_naming(p, "data type 0x0d"):
        read_idx(p)


def test_trailing_bytes(tmp_path, images):
    p = tmp_path / "long"
    p.write_bytes(idx_bytes(images) + b"\x00\x01")
    with _raises_naming(p, "unexpected bytes"):
        read_idx(p)


def test_too_short_and_empty(tmp_path):
    p = tmp_path / "short"
    for data in (b"", b"\x00\x00"):
        p.write_bytes(data)
        with _raises_naming(p, "too short"):
            read_idx(p)


def test_missing_file(tmp_path):
    p = tmp_path / "nope-idx1-ubyte"
    with _raises_naming(p, "not found"):
        read_idx(p)


def test_directory_instead_of_file(tmp_path):
    with _raises_naming(tmp_path, "cannot read"):
        read_idx(tmp_path)


# -- a directory of the four files --------------------------------------------------------------

def test_load_dir_gzip_and_raw(tmp_path):
    arrays = write_mnist_dir(tmp_path, n_train=30, n_test=12)
    xtr, ytr, xte, yte = load_idx_dir(tmp_path)
    assert xtr.shape == (30, 1, 28, 28) and xte.shape == (12, 1, 28, 28)
    assert ytr.dtype == np.int64 and yte.dtype == np.int64
    np.testing.assert_array_equal(xtr[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])


def test_count_mismatch_names_both_files(tmp_path):
    write_mnist_dir(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(labels, np.zeros(11, np.uint8))
    with pytest.raises(EdgeBranchyError) as e:
        load_idx_dir(tmp_path)
    msg = str(e.value)
    assert str(labels) in msg and str(tmp_path / "t10k-images-idx3-ubyte") in msg
    assert "12 images" in msg and "11 labels" in msg


def test_images_with_wrong_rank(tmp_path):
    write_mnist_dir(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(p, np.zeros((30, 784), np.uint8), gz=True)
    with _raises_naming(p, "3-D"):
        load_idx_dir(tmp_path)


def test_missing_file_in_dir(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(EdgeBranchyError, match="t10k-images-idx3-ubyte") as e:
        load_idx_dir(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_missing_dir(tmp_path):
    with _raises_naming(tmp_path / "absent", "not found"):
        load_idx_dir(tmp_path / "absent")
