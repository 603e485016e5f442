"""Reader for the IDX format of MNIST and Fashion-MNIST (gzip or raw)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.readers import inflate, kind_of, read_bytes

_UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes; gzip is detected from the content."""
    path = Path(path)
    raw = read_bytes(path, "idx")
    if raw[:2] == b"\x1f\x8b":
        raw = inflate(raw, f"IDX file {path}", kind_of("idx").max_inflated, gzip=True)
    if len(raw) < 4:
        raise EdgeBranchyError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or ndim == 0:
        raise EdgeBranchyError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    if dtype != _UBYTE:
        raise EdgeBranchyError(f"{path}: IDX data type 0x{dtype:02x} is not supported (only unsigned bytes)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise EdgeBranchyError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header < count:
        raise EdgeBranchyError(
            f"{path}: truncated: header announces {count} bytes of data for shape {dims}, file holds {len(raw) - header}"
        )
    if len(raw) - header > count:
        raise EdgeBranchyError(f"{path}: {len(raw) - header - count} unexpected bytes after the data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header, count=count).reshape(dims).copy()


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        p = directory / name
        if p.exists():
            return p
    raise EdgeBranchyError(f"missing {stem}(.gz) in {directory}")


def load_idx_dir(directory: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the four standard MNIST-format files: (x_train, y_train, x_test, y_test), x as N x 1 x H x W uint8."""
    d = Path(directory)
    if not d.is_dir():
        raise EdgeBranchyError(f"data directory not found: {d}")
    out = []
    for prefix in ("train", "t10k"):
        ip = _find(d, f"{prefix}-images-idx3-ubyte")
        lp = _find(d, f"{prefix}-labels-idx1-ubyte")
        x, y = read_idx(ip), read_idx(lp)
        if x.ndim != 3:
            raise EdgeBranchyError(f"{ip}: expected a 3-D image array, got shape {x.shape}")
        if y.ndim != 1:
            raise EdgeBranchyError(f"{lp}: expected a 1-D label array, got shape {y.shape}")
        if len(x) != len(y):
            raise EdgeBranchyError(f"{ip} has {len(x)} images but {lp} has {len(y)} labels")
        out += [x[:, None], y.astype(np.int64)]
    return out[0], out[1], out[2], out[3]
