"""A cache of decoded data sets, so decoding Fashion-MNIST (seconds) happens once, not in every command.

An entry is an uncompressed .npz of the split arrays and the normalisation, named by a sha256 over the
source files' contents (names and sha256 of each), the reader's version and the split's parameters: a
changed file, seed, validation size or limit is a different entry. The folder is
`$EDGEBRANCHY_CACHE`, else `$XDG_CACHE_HOME/edgebranchy`, else `~/.cache/edgebranchy`;
`EDGEBRANCHY_CACHE=off` disables it. Entries are written atomically (`util.files`); one that cannot be
read (truncated, damaged, another format) is ignored and rebuilt. A cache that cannot be written is
silently skipped: it only saves time.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

#: bump when what an entry holds or how the readers decode changes (2: the validation indices)
VERSION = 2
_OFF = ("off", "0", "no", "false", "none")
_CHUNK = 1 << 20


def cache_dir() -> Path | None:
    """The cache folder, or None when `EDGEBRANCHY_CACHE=off`."""
    env = os.environ.get("EDGEBRANCHY_CACHE")
    if env is not None:
        if env.strip().lower() in _OFF or not env.strip():
            return None
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebranchy"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(files: Iterable[Path]) -> str | None:
    """sha256 over the files' names and contents (each file's sha256, in name order); None when a file
    cannot be read (the reader then says what is wrong). The split record keeps it (data/splits.py)."""
    h = hashlib.sha256()
    try:
        for p in sorted(Path(f) for f in files):
            h.update(f"{p.name}\0{_file_sha256(p)}\0".encode())
    except OSError:
        return None
    return h.hexdigest()


def entry_key(kind: str, digest: str | None, params: dict) -> str | None:
    """The entry's name: sha256 over the source files' `digest` (`files_digest`) and `params`; None without
    a digest."""
    if digest is None:
        return None
    h = hashlib.sha256(json.dumps({"version": VERSION, "kind": kind, "params": params}, sort_keys=True).encode())
    h.update(digest.encode())
    return h.hexdigest()


def _path(key: str) -> Path | None:
    d = cache_dir()
    return None if d is None else d / "datasets" / f"{key}.npz"


def load(key: str | None, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of entry `key` (every one of `names`), or None: no cache, no entry, or a damaged one."""
    p = None if key is None else _path(key)
    if p is None or not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if set(names) - set(z.files):
                return None
            return {n: z[n] for n in names}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None  # damaged: rebuilt and rewritten by the caller


def store(key: str | None, arrays: dict[str, np.ndarray]) -> Path | None:
    """Write entry `key` atomically; None (and nothing written) when the cache is off or not writable."""
    p = None if key is None else _path(key)
    if p is None:
        return None
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, buf.getvalue())
    except (OSError, EdgeBranchyError):  # a full or read-only cache only costs the decode next time
        return None
    return p


def seen_before(kind: str, facts: list) -> bool:
    """Whether `facts` of `kind` were met before (a marker in the cache), recording them now; False when the
    cache is off or cannot be written (what depends on it is then said again)."""
    d = cache_dir()
    if d is None:
        return False
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.files import atomic_write_bytes

    key = hashlib.sha256(json.dumps({"version": VERSION, "kind": kind, "facts": facts}, sort_keys=True).encode())
    p = d / "seen" / key.hexdigest()
    if p.is_file():
        return True
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, b"")
    except (OSError, EdgeBranchyError):
        pass
    return False
