"""The split contract: which samples a checkpoint was trained, validated and tested on.

`train` stores `DataBundle.describe()` in the checkpoint (and export copies it into the manifest's
`source.dataset`). Its `split` block holds everything that determines the three splits: the sample
limit, the validation size, the seed, `sources_sha256` (the data set's files, names and contents; for
digits and synthetic data the decoded arrays; for an image folder its listing: relative paths, byte
sizes and classes, not the pixels, which would cost as much to hash as to read) and `val_index_sha256`
(the validation samples' positions in the data set's training part, after the limit; for an image
folder their relative paths). Every later command reloads the data through `load_recorded`, which
rebuilds the split from those settings and refuses, in one line saying what differs, data that does
not reproduce it: calibration cannot see a training sample.

A record written before the split block existed is reloaded from its validation size and seed only
when its training and validation counts add up to the whole training part (so no sample limit was
used), with a warning that the split cannot be verified; otherwise it is refused (retrain).
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError

#: the split block's format
SPLIT_VERSION = 1


def index_digest(index: Sequence[int] | np.ndarray) -> str:
    """sha256 of sample positions (as little-endian int64)."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(index, dtype="<i8")).tobytes()).hexdigest()


def names_digest(names: Sequence[str]) -> str:
    """sha256 of a list of names (relative paths), in order."""
    return hashlib.sha256("\0".join(names).encode()).hexdigest()


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of each array (a data set decoded in memory)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def split_block(limit: int | None, val_size: int, seed: int, sources: str | None, val_index: str) -> dict:
    """The `split` entry of a data set's record (see the module docstring)."""
    return {"version": SPLIT_VERSION, "limit": limit, "val_size": int(val_size), "seed": int(seed),
            "sources_sha256": sources, "val_index_sha256": val_index}


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_recorded(dataset: dict | None, data_dir: str | os.PathLike | None = None, what: str = "the checkpoint",
                  log: Callable[[str], None] | None = None):
    """Reload the data set and split that `dataset` (a checkpoint's `DataBundle.describe()`) records,
    exactly, or refuse in one line saying what differs. `what` names the record's owner in messages."""
    from edgebranchy.data.datasets import load_dataset

    d = dataset or {}
    if "name" not in d:
        raise EdgeBranchyError(f"{what} does not record which dataset it was trained on; pass the data "
                               "explicitly")
    src = d.get("source")
    ddir = data_dir or (src if src and Path(src).is_dir() else None)
    split = d.get("split")
    if split is not None and (not isinstance(split, dict) or split.get("version") != SPLIT_VERSION):
        raise EdgeBranchyError(f"{what} records its data split in a format this edgebranchy does not know "
                               f"(version {split.get('version') if isinstance(split, dict) else split!r}); "
                               "update edgebranchy")
    if split is None:
        settings = {"val_size": d.get("val"), "seed": d.get("split_seed", 0), "limit": None}
    else:
        settings = {k: split.get(k) for k in ("val_size", "seed", "limit")}
    try:
        bundle = load_dataset(d["name"], ddir, image=d.get("image"), **settings)
    except EdgeBranchyError as e:
        raise EdgeBranchyError(f"cannot reload the dataset of {what} ({e}); pass `data_dir`") from None
    check_split(d, bundle, what, log)
    return bundle


def _short(digest: str | None) -> str:
    return "none" if not digest else digest[:12]


def check_split(dataset: dict, bundle, what: str = "the checkpoint", log: Callable[[str], None] | None = None) -> None:
    """Refuse `bundle` unless it holds exactly the split `dataset` records (one line naming every
    difference); a record without a split block is checked on its counts and warned about."""
    got = bundle.describe()
    diffs = []
    if got["name"] != dataset.get("name"):
        diffs.append(f"data set {got['name']} here, {dataset.get('name')} recorded")
    counts = [f"{k} {got[k]} here, {dataset.get(k)} recorded" for k in ("train", "val", "test")
              if got[k] != dataset.get(k)]
    split, here = dataset.get("split"), got.get("split") or {}
    if split is None:
        if diffs or counts:
            raise EdgeBranchyError(
                f"{what} was trained on a split this data does not rebuild ({'; '.join(diffs + counts)}) and its "
                "record predates recorded splits (no sample limit, file hashes or validation indices): retrain it "
                "with this edgebranchy")
        (log or _stderr)(f"warning: {what} predates recorded splits: its validation split was rebuilt from the seed "
                         f"({dataset.get('split_seed', 0)}) and size ({dataset.get('val')}) it records, with no hash "
                         "to verify it; retrain to record the split")
        return
    if split.get("sources_sha256") != here.get("sources_sha256"):
        diffs.append(f"source files sha256 {_short(here.get('sources_sha256'))} here, "
                     f"{_short(split.get('sources_sha256'))} recorded (from {dataset.get('source')})")
    diffs += [f"{k} {here.get(k)} here, {split.get(k)} recorded" for k in ("limit", "val_size", "seed")
              if here.get(k) != split.get(k)]
    diffs += counts
    if split.get("val_index_sha256") != here.get("val_index_sha256"):
        diffs.append(f"validation indices sha256 {_short(here.get('val_index_sha256'))} here, "
                     f"{_short(split.get('val_index_sha256'))} recorded")
    if diffs:
        raise EdgeBranchyError(f"this data does not reproduce the split {what} was trained with: "
                               + "; ".join(diffs) + " (give the data set it was trained on, e.g. with `data_dir`, "
                               "or retrain)")


def load_test_data(dataset: dict | None, name: str, data_dir: str | os.PathLike | None = None,
                   image: dict | None = None, what: str = "the artifact"):
    """The data whose test split predict and bench run: the recorded split (`load_recorded`) when `name`
    is the data set `dataset` records, else data set `name` as it comes (another data set, e.g. to watch
    the exit rates drift)."""
    if dataset and dataset.get("name") == name:
        return load_recorded(dataset, data_dir, what)
    from edgebranchy.data.datasets import load_dataset

    return load_dataset(name, data_dir, image=image)
