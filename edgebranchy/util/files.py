"""Atomic file writes and hashing.

Every write error (read-only or full disk, missing or forbidden folder) leaves
through `writing(path)` as one EdgeBranchyError naming the path and the cause.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from edgebranchy.errors import EdgeBranchyError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised while writing `path` into one EdgeBranchyError naming it and the cause."""
    from edgebranchy.util.outputs import write_error

    try:
        yield
    except OSError as e:
        raise write_error(path, e) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path = Path(path)
    with writing(path):
        return _atomic_write_bytes(path, data)


def _atomic_write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would have had
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_dir(out: str | os.PathLike, build: Callable[[Path], None], replace: bool = False) -> Path:
    """Create the directory `out` atomically: `build(tmpdir)` fills a temporary sibling, which is then
    renamed to `out`. An existing `out` is only replaced with replace=True, and only once the new one
    is complete; on any failure the temporary directory is removed and `out` is left as it was."""
    out = Path(out)
    with writing(out):
        if out.exists() and not replace:
            raise EdgeBranchyError(f"{out} already exists; pass `force` to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; a plain mkdir would not
            build(tmp)
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
                os.replace(out, old / "a")
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON document, turning every failure into an EdgeBranchyError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgeBranchyError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeBranchyError(f"cannot read {what} {path}: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise EdgeBranchyError(f"{what} {path} is not valid JSON: {e}") from None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(path: str | os.PathLike, want: Any, message: str) -> str:
    """The file's sha256; raises EdgeBranchyError(`message` + both digests) when it is not `want`."""
    got = sha256_file(path)
    if got != want:
        raise EdgeBranchyError(f"{message}: sha256 {got[:16]}... does not match the recorded {str(want)[:16]}...")
    return got
