"""The CIFAR-10 python-batch reader on small batches in the real format, good, damaged and malicious."""
from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from edgebranchy.data import load_dataset
from edgebranchy.data.cifar import load_cifar_dir, read_batch
from edgebranchy.errors import EdgeBranchyError


def _batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def py3_protocol2(data: np.ndarray, labels: list, extra: dict | None = None) -> bytes:
    """pickle.dump(d, f, protocol=2) from Python 3 (bytes become _codecs.encode calls)."""
    d = {b"batch_label": b"training batch 1 of 5", b"labels": labels, b"data": data,
         b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    d.update(extra or {})
    return pickle.dumps(d, protocol=2)


def py2_cpickle(data: np.ndarray, labels: list) -> bytes:
    """What cPickle.dump(d, f, 2) wrote in Python 2 with numpy 1.x: the original CIFAR-10 files.

    Python 2 str values are BINSTRING opcodes and numpy's reconstructor lives in numpy.core.multiarray.
    """
    def s(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def i(n: int) -> bytes:
        return b"K" + bytes([n]) if 0 <= n < 256 else (b"M" + struct.pack("<H", n) if 0 <= n < 65536
                                                        else b"J" + struct.pack("<i", n))
    n = len(data)
    out = b"\x80\x02}("                                                        # PROTO 2, EMPTY_DICT, MARK
    out += s(b"batch_label") + s(b"training batch 1 of 5")
    out += s(b"labels") + b"](" + b"".join(i(v) for v in labels) + b"e"           # EMPTY_LIST MARK ... APPENDS
    out += s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\n"                             # GLOBAL
    out += b"cnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R"           # (ndarray, (0,), 'b') REDUCE
    out += b"(" + i(1) + i(n) + i(3072) + b"\x86"                               # state: (1, (n, 3072),
    out += b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"                # dtype('u1', 0, 1)
    out += b"(" + i(3) + s(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + i(0) + b"tb"  # dtype state, BUILD
    out += b"\x89" + s(np.ascontiguousarray(data).tobytes()) + b"tb"            # False, raw bytes) BUILD
    out += b"u."                                                                 # SETITEMS, STOP
    return out


@pytest.mark.parametrize("writer", [py2_cpickle, py3_protocol2], ids=["python2-cpickle", "python3-protocol2"])
def test_read_good_batch(tmp_path, writer):
    data, labels = _batch(6)
    p = tmp_path / "data_batch_1"
    p.write_bytes(writer(data, labels))
    x, y = read_batch(p)
    assert x.shape == (6, 3, 32, 32) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == labels
    # row-major: 1024 red, then 1024 green, then 1024 blue values, each 32x32
    np.testing.assert_array_equal(x.reshape(6, 3072), data)
    assert x[2, 1, 0, 5] == data[2, 1024 + 5]


def test_python2_writer_is_faithful(tmp_path):
    """The hand-written Python 2 pickle loads with a plain unpickler as the CIFAR-10 page says."""
    data, labels = _batch(3)
    d = pickle.loads(py2_cpickle(data, labels), encoding="bytes")
    assert set(d) == {b"batch_label", b"labels", b"data"}
    np.testing.assert_array_equal(d[b"data"], data)


def _write(tmp_path: Path, payload: bytes, name: str = "data_batch_1") -> Path:
    p = tmp_path / name
    p.write_bytes(payload)
    return p


def _expect_error(p: Path, match: str) -> None:
    with pytest.raises(EdgeBranchyError, match=match) as e:
        read_batch(p)
    assert str(p) in str(e.value)


def test_truncated_batch(tmp_path):
    data, labels = _batch(4)
    raw = py3_protocol2(data, labels)
    for cut in (len(raw) // 2, len(raw) - 1, 5):
        _expect_error(_write(tmp_path, raw[:cut]), "not a CIFAR-10 python batch")


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(7)
    for n in (1, 16, 300, 5000):
        _expect_error(_write(tmp_path, rng.integers(0, 256, n, dtype=np.uint8).tobytes()), "CIFAR-10")


def test_wrong_sizes_and_labels(tmp_path):
    data, labels = _batch(4)
    _expect_error(_write(tmp_path, py3_protocol2(data[:, :3000], labels)), "multiple of 3072")
    _expect_error(_write(tmp_path, py3_protocol2(data, labels[:3])), "4 images but 3 labels")
    _expect_error(_write(tmp_path, py3_protocol2(data, [0, 1, 2, 10])), "labels outside")
    _expect_error(_write(tmp_path, pickle.dumps({b"data": data}, protocol=2)), "missing")
    _expect_error(_write(tmp_path, pickle.dumps([data, labels], protocol=2)), "top level is list")


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    data, labels = _batch(2)
    p = _write(tmp_path, py3_protocol2(data, labels, {b"x": _Evil(marker)}))
    assert b"system" in p.read_bytes()
    with pytest.raises(EdgeBranchyError, match="refusing") as e:
        read_batch(p)
    assert str(p) in str(e.value)
    assert not marker.exists(), "the pickle ran code"
    # the same payload as the whole file
    p.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    _expect_error(p, "refusing")
    assert not marker.exists()


def test_load_cifar_dir_and_dataset(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    written = []
    for k, n in ((1, 12), (2, 8)):
        data, labels = _batch(n, seed=k)
        written.append((data, labels))
        (d / f"data_batch_{k}").write_bytes(py2_cpickle(data, labels))
    tdata, tlabels = _batch(5, seed=9)
    (d / "test_batch").write_bytes(py3_protocol2(tdata, tlabels))

    xtr, ytr, xte, yte = load_cifar_dir(tmp_path)  # the parent of cifar-10-batches-py works too
    assert xtr.shape == (20, 3, 32, 32) and ytr.tolist() == written[0][1] + written[1][1]
    assert xte.shape == (5, 3, 32, 32) and yte.tolist() == tlabels

    b = load_dataset("cifar10", data_dir=d)
    assert b.input_shape == (3, 32, 32) and len(b.train) + len(b.val) == 20 and len(b.test) == 5
    assert b.classes[0] == "airplane" and len(b.classes) == 10
    assert len(b.norm.mean) == 3 and b.norm.scale == 255.0

    (d / "test_batch").unlink()
    with pytest.raises(EdgeBranchyError, match="test_batch"):
        load_cifar_dir(d)


def test_cifar_dir_errors(tmp_path):
    with pytest.raises(EdgeBranchyError, match="not found"):
        load_cifar_dir(tmp_path / "absent")
    with pytest.raises(EdgeBranchyError, match="no data_batch"):
        load_cifar_dir(tmp_path)
    with pytest.raises(EdgeBranchyError, match="CIFAR-10 batch not found"):
        read_batch(tmp_path / "data_batch_9")
