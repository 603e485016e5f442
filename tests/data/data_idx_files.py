"""Writers for small files in the real IDX format (what MNIST / Fashion-MNIST ship)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(arr: np.ndarray, dtype_byte: int = 0x08) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, dtype_byte, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_dir(d: Path, n_train: int = 30, n_test: int = 12, size: int = 28, seed: int = 0,
                    gz_train: bool = True, gz_test: bool = False) -> dict:
    """The four standard files; train gzipped and test raw by default, so one directory covers both."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for stem, arr in arrays.items():
        gz = gz_train if stem.startswith("train") else gz_test
        write_idx(d / (stem + (".gz" if gz else "")), arr, gz=gz)
    return arrays
