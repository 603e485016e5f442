"""The results file's side file of raw per-call latencies: OUT.latencies.npz, keys `<run id>/<variant>`.

A results file (version 2 and 3) keeps every statistic; the raw latencies (tens of thousands of numbers
per run) are only needed for distributions (the report's CDF plot), so they live here, compressed,
with the file's sha256 recorded in the results file.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError

SUFFIX = ".latencies.npz"


def side_path(results: str | os.PathLike) -> Path:
    """Where the side file of the results file `results` lives: OUT.latencies.npz next to it."""
    results = Path(results)
    return results.with_name(results.name + SUFFIX)


def write_latencies(results: str | os.PathLike, arrays: dict) -> tuple[str, str]:
    """Write {key: list of ms} atomically as the side file of `results`; returns (file name, sha256)."""
    import numpy as np

    from edgebranchy.util.files import atomic_write_bytes, sha256_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})
    data = buf.getvalue()
    path = side_path(results)
    atomic_write_bytes(path, data)
    return path.name, sha256_bytes(data)


def _doc(results: Path) -> dict:
    from edgebranchy.util.readers import load_json

    return load_json(results, "results")


def load_latencies(results: str | os.PathLike, run_id: str, doc: dict | None = None) -> dict:
    """{variant: numpy array of per-call ms} of run `run_id`; a missing, unreadable or tampered side file
    raises EdgeBranchyError naming it (a version-1 file has its latencies inline and needs none)."""
    import numpy as np

    from edgebranchy.util.readers import load_npz, sha256_regular

    results = Path(results)
    doc = _doc(results) if doc is None else doc
    if doc.get("version", doc.get("schema_version")) == 1:
        lat = {k: np.asarray(v["latency_ms"]["samples"], dtype=float) for k, v in doc["variants"].items()}
        return lat
    name = doc.get("latencies")
    if not name:
        raise EdgeBranchyError(f"results file {results} records no latencies side file")
    if not isinstance(name, str) or name != Path(name).name or name in (".", ".."):
        raise EdgeBranchyError(f"results file {results}: 'latencies' should name a file next to it, got {name!r:.60}")
    path = results.with_name(name)
    if not path.exists():
        raise EdgeBranchyError(f"latencies side file {path} of {results} is missing (copy it next to the "
                               "results file; statistics are in the results file, raw latencies only there)")
    want = doc.get("latencies_sha256")
    if want and sha256_regular(path, "latencies") != want:
        raise EdgeBranchyError(f"latencies side file {path} does not match the sha256 that {results} records "
                               "(changed or from another run)")
    arrays = load_npz(path, "latencies")
    out = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == run_id and "/" in k}
    if not out:
        raise EdgeBranchyError(f"latencies side file {path} has no latencies of run {run_id!r}")
    for variant, values in out.items():
        if values.ndim != 1 or values.dtype.kind != "f":
            raise EdgeBranchyError(f"latencies side file {path}: {run_id}/{variant} should be a list of numbers, "
                                   f"got {values.dtype} of shape {values.shape}")
    return out
