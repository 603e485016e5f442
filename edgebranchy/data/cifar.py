"""Reader for the CIFAR-10 "python version" batches (data_batch_1..5, test_batch).

The batches are pickles of dicts holding a numpy array and lists. They are read
with a restricted unpickler that only resolves numpy's array reconstruction;
any other global (the usual way a pickle runs code) is refused.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from edgebranchy.errors import EdgeBranchyError


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2 (numpy array data)
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):  # noqa: D401 - pickle hook
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (x N x 3 x 32 x 32 uint8, y int64)."""
    path = Path(path)
    from edgebranchy.util.readers import open_regular

    try:
        with open_regular(path, "cifar") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except EdgeBranchyError:
        raise
    except Exception as e:  # noqa: BLE001 - damaged pickles also raise LookupError, MemoryError, ...
        raise EdgeBranchyError(f"{path}: not a CIFAR-10 python batch ({e})") from None
    if not isinstance(d, dict):
        raise EdgeBranchyError(f"{path}: not a CIFAR-10 python batch (top level is {type(d).__name__})")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise EdgeBranchyError(f"{path}: missing b'data' or b'labels'")
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise EdgeBranchyError(f"{path}: b'data' must be a uint8 array or bytes, got "
                               f"{getattr(data, 'dtype', type(data).__name__)}")
    if data.size % 3072:
        raise EdgeBranchyError(f"{path}: data size {data.size} is not a multiple of 3072 (32x32x3)")
    x = data.reshape(-1, 3, 32, 32)
    y = _labels(path, labels)
    if len(x) != len(y):
        raise EdgeBranchyError(f"{path}: {len(x)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise EdgeBranchyError(f"{path}: labels outside 0..9")
    return x, y


def _labels(path: Path, labels) -> np.ndarray:
    """b'labels': a list (or 1-D integer array) of whole numbers; anything else is a damaged batch."""
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise EdgeBranchyError(f"{path}: b'labels' must be a 1-D integer array, got {labels.dtype} "
                                   f"shape {labels.shape}")
        return labels.astype(np.int64)
    if not isinstance(labels, (list, tuple)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in labels):
        bad = next((v for v in labels if not isinstance(v, (int, np.integer)) or isinstance(v, bool)), labels) \
            if isinstance(labels, (list, tuple)) else labels
        raise EdgeBranchyError(f"{path}: b'labels' must be a list of whole numbers 0..9, found {bad!r:.60}")
    return np.asarray(labels, dtype=np.int64)


def load_cifar_dir(directory: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load data_batch_1..5 and test_batch from a directory (or its cifar-10-batches-py child)."""
    d = Path(directory)
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    if not d.is_dir():
        raise EdgeBranchyError(f"data directory not found: {d}")
    train = sorted(d.glob("data_batch_*"))
    if not train:
        raise EdgeBranchyError(f"no data_batch_* files in {d}")
    parts = [read_batch(p) for p in train]
    xt, yt = read_batch(d / "test_batch")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xt, yt)
