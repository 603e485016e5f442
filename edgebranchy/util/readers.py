"""One gate for every file edgebranchy reads: a declared kind per file, each with its limits.

`FILE_KINDS` is the registry: every kind of file the package reads (manifest, results, trial log, profile, data
files, ...) with its size limit, inflate bound and JSON/TOML nesting depth. Every reader goes through these, which
  - open only regular files (a FIFO, a device such as /dev/zero or a folder is refused without blocking),
  - refuse a file over its kind's size limit before reading it,
  - parse JSON/TOML with a bounded nesting depth (checked without recursion; RecursionError never escapes),
  - check the parsed document against a declared schema (`util/schema.py`) before any use,
  - inflate gzip streams and zip members (.npz, checkpoints) only up to the kind's bound (zlib errors and
    bombs are one line), and build .npy arrays only after their header's element count matches the bytes.
Every failure is one EdgeBranchyError naming the file. A test (tests/reliability/test_readers_property.py)
holds a mutation strategy for every registered kind, and another scans the package for direct calls of
json.load, np.load, tomllib.load, tarfile.open, gzip.open and torch.load outside the readers.
"""
from __future__ import annotations

import io
import json
import os
import stat
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any, Dict, List

from edgebranchy.errors import EdgeBranchyError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class FileKind:
    """A kind of file: `what` names it in messages; limits on its size, its inflated size, its nesting."""
    name: str
    what: str
    max_bytes: int
    max_inflated: int = 0
    max_depth: int = 32


FILE_KINDS: Dict[str, FileKind] = {}


def declare(name: str, what: str, max_bytes: int, max_inflated: int = 0, max_depth: int = 32) -> FileKind:
    """Register a kind of file (once per name)."""
    kind = FileKind(name, what, max_bytes, max_inflated, max_depth)
    FILE_KINDS[name] = kind
    return kind


# every kind the package reads; tests/reliability/test_readers_property.py has a strategy for each
declare("manifest", "artifact manifest", 16 * MIB)
declare("results", "results file", 512 * MIB)
declare("trial-log", "bench trial log", 512 * MIB)
declare("latencies", "latencies side file", 1 * GIB, max_inflated=4 * GIB)
declare("data-cache", "data-set cache entry", 8 * GIB, max_inflated=8 * GIB)
declare("idx", "IDX file", 2 * GIB, max_inflated=2 * GIB)
declare("data-file", "data file", 64 * GIB)
declare("cifar", "CIFAR-10 batch", 512 * MIB)
declare("image", "image file", 256 * MIB)
declare("profile", "device profile", 1 * MIB)
declare("inventory", "inventory", 1 * MIB)
declare("board-status", "board status", 1 * MIB)
declare("board-tar", "board's returned tar", 2 * GIB)
declare("checkpoint", "checkpoint", 16 * GIB, max_inflated=16 * GIB)
declare("resume-state", "resume state", 16 * GIB, max_inflated=16 * GIB)
declare("engine-description", "engine description", 1 * MIB)
declare("engine", "TensorRT engine", 8 * GIB)
declare("timing-cache", "TensorRT timing cache", 1 * GIB)
declare("artifact-file", "artifact file", 8 * GIB)
declare("wheel", "wheel", 1 * GIB, max_inflated=4 * GIB)
declare("sniffed", "file", 64 * GIB)  # util/kinds.py reads only a head of it
declare("power-log", "external power log", 256 * MIB)
declare("plan", "plan file", 16 * MIB)
declare("plan-cache", "plan cache file", 64 * GIB)  # features, head logits, cost tables


def kind_of(name: str) -> FileKind:
    try:
        return FILE_KINDS[name]
    except KeyError:
        raise ValueError(f"undeclared file kind {name!r}") from None


def _refused(path: Any, kind: FileKind, why: str) -> EdgeBranchyError:
    return EdgeBranchyError(f"cannot read {kind.what} {path}: {why}")


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Any, kind: str) -> IO[bytes]:
    """`path` opened for reading if it is a regular file within `kind`'s size limit (never blocks on a FIFO)."""
    k = kind_of(kind)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(os.fspath(path), flags)
    except FileNotFoundError:
        raise EdgeBranchyError(f"{k.what} not found: {path}") from None
    except (OSError, ValueError) as e:
        raise _refused(path, k, str(getattr(e, "strerror", None) or e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refused(path, k, f"it is {_file_type(st.st_mode)}, not a regular file")
        if st.st_size > k.max_bytes:
            raise _refused(path, k, f"it is {st.st_size:,} bytes; a {k.what} is at most {k.max_bytes:,}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_at_most(f, n: int, chunk: int = 16 * MIB) -> bytes:
    """At most n bytes of f, a chunk at a time (f.read(n) allocates n bytes: a 64 GiB limit would fail)."""
    parts: list = []
    while n > 0 and parts[-1:] != [b""]:
        parts.append(f.read(min(n, chunk)))
        n -= len(parts[-1])
    return b"".join(parts)


def read_bytes(path: Any, kind: str) -> bytes:
    """The bytes of a regular file of `kind` (at most its size limit)."""
    k = kind_of(kind)
    try:
        with open_regular(path, kind) as f:
            data = _read_at_most(f, k.max_bytes + 1)
    except OSError as e:
        raise _refused(path, k, str(e.strerror or e)) from None
    if len(data) > k.max_bytes:
        raise _refused(path, k, f"grew past {k.max_bytes:,} bytes while read")
    return data


def decode_text(data: bytes, where: str, allow_nul: bool = False) -> str:
    """UTF-8 text (a NUL byte refused unless `allow_nul`); `where` names it in the error."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgeBranchyError(f"{where}: not UTF-8 text (byte {e.start})") from None
    if not allow_nul and "\x00" in text:
        raise EdgeBranchyError(f"{where}: holds a NUL byte at character {text.index(chr(0))}")
    return text


def read_text(path: Any, kind: str) -> str:
    """The UTF-8 text of a regular file of `kind` (no NUL bytes)."""
    return decode_text(read_bytes(path, kind), f"{kind_of(kind).what} {path}")


def check_depth(obj: Any, where: str, limit: int) -> None:
    """Refuse lists/objects nested deeper than `limit` (walked with a stack, not recursion)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > limit:
                raise EdgeBranchyError(f"{where}: nested more than {limit} levels deep")
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))


def _bracket_depth(text: str) -> int:
    """The deepest nesting of [ and { outside JSON strings, without parsing (bounded work, no recursion)."""
    import re

    skeleton = re.sub(r'[^\[\]{}]+', "", re.sub(r'"(?:[^"\\]|\\.)*"', "", text))
    depth = 0
    while skeleton:
        stripped = skeleton.replace("[]", "").replace("{}", "")
        if stripped == skeleton:  # unbalanced: the parser says where
            break
        skeleton, depth = stripped, depth + 1
        if depth > 200:
            break
    return depth


def _parsed(parse: Any, errors: Any, fmt: str, text: str, where: str, kind: str, schema: Any) -> Any:
    """`parse(text)` with the nesting bounded by `kind` before and after, checked against `schema` if given."""
    k = kind_of(kind)
    deep = EdgeBranchyError(f"{where}: nested more than {k.max_depth} levels deep")
    if text.count("[") + text.count("{") > k.max_depth and _bracket_depth(text) > k.max_depth:
        raise deep
    try:
        obj = parse(text)
    except RecursionError:
        raise deep from None
    except errors as e:
        raise EdgeBranchyError(f"{where} is not valid {fmt}: {e}") from None
    check_depth(obj, where, k.max_depth)
    if schema is not None:
        from edgebranchy.util.schema import check

        check(obj, schema, where)
    return obj


def parse_json(text: str, where: str, kind: str, schema: Any = None) -> Any:
    """A JSON document from `text`, nesting bounded by `kind`, checked against `schema` when given."""
    return _parsed(json.loads, ValueError, "JSON", text, where, kind, schema)


def load_json(path: Any, kind: str, schema: Any = None) -> Any:
    """The JSON document in the regular file `path` of `kind`, checked against `schema` when given."""
    k = kind_of(kind)
    return parse_json(read_text(path, kind), f"{k.what} {path}", kind, schema)


def parse_toml(text: str, where: str, kind: str, schema: Any = None) -> dict:
    """A TOML document from `text`, nesting bounded by `kind`, checked against `schema` when given."""
    if sys.version_info >= (3, 11):
        import tomllib  # novermin (guarded: tomli below is the same parser for 3.8-3.10)
    else:
        import tomli as tomllib
    return _parsed(tomllib.loads, tomllib.TOMLDecodeError, "TOML", text, where, kind, schema)


def load_toml(path: Any, kind: str, schema: Any = None) -> dict:
    """The TOML document in the regular file `path` of `kind`, checked against `schema` when given."""
    return parse_toml(read_text(path, kind), f"{kind_of(kind).what} {path}", kind, schema)


# ------------------------------------------------------------------ compressed content


def inflate(data: bytes, where: str, limit: int, gzip: bool = False) -> bytes:
    """Decompress a deflate stream (`gzip`: gzip members) to at most `limit` bytes."""
    out: List[bytes] = []
    total = 0
    try:
        while True:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else -zlib.MAX_WBITS)
            chunk = d.decompress(data, limit + 1 - total)
            total += len(chunk)
            out.append(chunk)
            if total > limit:
                raise EdgeBranchyError(f"{where}: inflates to more than {limit:,} bytes")
            if not d.eof:
                raise EdgeBranchyError(f"{where}: compressed stream is truncated")
            data = d.unused_data
            if not (gzip and data):
                break
    except zlib.error as e:
        raise EdgeBranchyError(f"{where}: corrupt compressed stream ({e})") from None
    return b"".join(out)


def zip_members(source: Any, where: str, limit: int, keep: bool = True) -> Dict[str, bytearray]:
    """The members of a zip archive (bytes or a binary file), each checked (declared size, CRC, deflate) and
    all together at most `limit` inflated bytes; `keep=False` checks them without keeping them."""
    src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    members: Dict[str, bytearray] = {}
    try:
        with zipfile.ZipFile(src) as z:
            infos = z.infolist()
            if sum(i.file_size for i in infos) > limit:
                raise EdgeBranchyError(f"its members declare more than {limit:,} bytes")
            for info in infos:
                body = _read_member(z, info, keep)
                if keep:
                    members[info.filename] = body
    except EdgeBranchyError as e:
        raise EdgeBranchyError(f"{where}: {e}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError,
            NotImplementedError) as e:
        raise EdgeBranchyError(f"cannot read {where}: not a zip archive ({e})") from None
    return members


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, keep: bool) -> bytearray:
    """One member read into a buffer of its declared size (writable, so arrays on it are too); a member
    that inflates to more or fewer bytes than declared is refused."""
    buf = bytearray(info.file_size if keep else min(info.file_size, 1 << 24))
    view, n = memoryview(buf), 0
    with z.open(info) as f:
        while n < info.file_size:
            part = view[n:] if keep else view[: min(len(buf), info.file_size - n)]
            got = f.readinto(part)
            if not got:
                break
            n += got
        if n != info.file_size or f.read(1):
            raise EdgeBranchyError(f"member {info.filename} does not inflate to its declared {info.file_size:,} bytes")
    return buf


def check_zip(path: Any, kind: str) -> None:
    """A zip file of `kind` (checkpoint, resume state) checked member by member before a library reads it."""
    k = kind_of(kind)
    with open_regular(path, kind) as f:
        zip_members(f, f"{k.what} {path}", k.max_inflated, keep=False)


def _npy_header(f: IO[bytes], size: int, where: str) -> Any:
    """(shape, fortran, dtype, count) of the .npy header at `f`, checked: no Python objects, and `count`
    elements filling exactly the `size` bytes of the whole .npy."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(f)
        reader = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as e:
        raise EdgeBranchyError(f"{where}: not a .npy array ({e})") from None
    if dtype.hasobject:
        raise EdgeBranchyError(f"{where}: holds Python objects, which edgebranchy never reads")
    count = 1
    for n in shape:
        count *= int(n)
    if count * dtype.itemsize != size - f.tell():
        raise EdgeBranchyError(f"{where}: header claims {count:,} elements of {dtype.itemsize} bytes, "
                               f"it holds {size - f.tell():,} bytes")
    return shape, fortran, dtype, count


def npy_array(raw: bytearray, where: str) -> Any:
    """The array in one .npy member; the header's element count is checked against the bytes first."""
    import numpy as np

    f = io.BytesIO(bytes(raw[: 1 << 20]))  # the header only: the body is not copied
    shape, fortran, dtype, count = _npy_header(f, len(raw), where)
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=f.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def load_npy(path: Any, kind: str, mmap: bool = False) -> Any:
    """The array of a .npy file of `kind` (memory-mapped read-only with `mmap`): regular, bounded, no pickles,
    the header's element count checked against the file's size first."""
    import numpy as np

    k = kind_of(kind)
    with open_regular(path, kind) as f:
        _npy_header(f, os.fstat(f.fileno()).st_size, f"{k.what} {path}")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def load_npz(path: Any, kind: str) -> Dict[str, Any]:
    """{name: array} of an .npz file of `kind`: regular, bounded, no pickles, element counts checked."""
    k = kind_of(kind)
    where = f"{k.what} {path}"
    with open_regular(path, kind) as f:
        members = zip_members(f, where, k.max_inflated)
    out = {}
    for name, raw in members.items():
        if not name.endswith(".npy"):
            raise EdgeBranchyError(f"{where}: member {name} is not a .npy array")
        out[name[:-4]] = npy_array(raw, f"{where} ({name})")
    return out


def tar_files(data: bytes, where: str, kind: str, start: int = 0) -> List[Any]:
    """[(member name, bytes)] of the regular files in an uncompressed tar held in memory from byte `start` on
    (a board's returned tar, after its mark), `data` within `kind`'s size limit; a damaged tar, or a member
    path or link out of its folder, is one EdgeBranchyError."""
    import tarfile

    k = kind_of(kind)
    if len(data) > k.max_bytes:
        raise EdgeBranchyError(f"{where}: {len(data):,} bytes; a {k.what} is at most {k.max_bytes:,}")
    out = []
    try:
        with tarfile.open(fileobj=io.BytesIO(memoryview(data)[start:]), mode="r:") as tar:
            for m in tar.getmembers():
                parts = PurePosixPath(m.name).parts
                if m.name.startswith("/") or ".." in parts or \
                        ((m.issym() or m.islnk()) and (m.linkname.startswith("/") or ".." in PurePosixPath(m.linkname).parts)):
                    raise EdgeBranchyError(f"{where}: it holds {m.name!r}, a path or link out of its folder: "
                                           "nothing of it is kept")
                f = tar.extractfile(m) if m.isfile() else None
                if f is not None:
                    out.append((m.name, f.read()))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise EdgeBranchyError(f"{where}: not a readable tar ({e})") from None
    return out


def sha256_regular(path: Any, kind: str) -> str:
    """The sha256 of a regular file of `kind` (a FIFO or device is refused, never read)."""
    import hashlib

    h = hashlib.sha256()
    k = kind_of(kind)
    try:
        with open_regular(path, kind) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise _refused(path, k, str(e.strerror or e)) from None
    return h.hexdigest()
