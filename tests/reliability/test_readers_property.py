"""Property: every kind of file the package reads (util/readers.FILE_KINDS), mutated (a key deleted or retyped,
nested deep, truncated, a bit flipped, inflated, replaced by a FIFO, /dev/zero or a folder, over its size
limit, a bomb, a corrupt deflate stream, an .npy header claiming 2^40 elements), is either read or refused in
one line (EdgeBranchyError: exit 2 at the CLI), quickly, and leaves every file as it was. A registered kind
without a case here fails `test_every_reader_has_a_strategy`; a direct json.load / np.load / tomllib.load /
tarfile.open / gzip.open / torch.load outside the readers fails `test_no_reader_bypasses_the_gate`.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import gzip
import io
import json
import os
import threading
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util import readers
from reader_cases import CASES

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NEST = 100_000
#: mutations after which the file must be refused (the others may leave a file that is still valid)
MUST_REFUSE = {"fifo", "devzero", "folder", "oversize", "bomb", "nest", "npy-huge", "corrupt-deflate"}
WRONG = st.sampled_from(["x", True, None, [], {}, -1, 1e308, [[1]], {"a": None}])


def mutations(fmt: str):
    common = [st.tuples(st.sampled_from(["fifo", "devzero", "folder", "oversize"])),
              st.tuples(st.just("truncate"), st.floats(0, 0.999)),
              st.tuples(st.just("bitflip"), st.integers(0, 1 << 30), st.integers(0, 7))]
    extra = {
        "json": [st.tuples(st.just("delete"), st.integers(0, 1 << 20)),
                 st.tuples(st.just("retype"), st.integers(0, 1 << 20), WRONG),
                 st.tuples(st.just("nest"), st.integers(0, 1 << 20))],
        "toml": [st.tuples(st.just("delete"), st.integers(0, 1 << 20)),
                 st.tuples(st.just("retype"), st.integers(0, 1 << 20), WRONG), st.tuples(st.just("nest"))],
        "zip": [st.tuples(st.just("bomb")), st.tuples(st.just("corrupt-deflate"))],
        "npz": [st.tuples(st.just("bomb")), st.tuples(st.just("corrupt-deflate")), st.tuples(st.just("npy-huge"))],
        "gzip": [st.tuples(st.just("bomb"))],
        "tar": [], "bytes": [],
    }
    extra["jsonl"] = [st.tuples(st.just("line"), st.integers(0, 1 << 20), m) for m in extra["json"]] + [
        st.tuples(st.just("line"), st.integers(0, 1 << 20), st.sampled_from([("nul",), ("latin1",)]))]
    return st.one_of(*common, *extra[fmt])


# ------------------------------------------------------------------ applying a mutation


def _paths(obj, here=()):
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append(here + (k,))
        out += _paths(v, here + (k,))
    return out


def _json_mutation(text: str, m) -> str:
    doc = json.loads(text)
    paths = _paths(doc)
    if not paths:
        return "[" * NEST + "]" * NEST if m[0] == "nest" else json.dumps(m[2] if m[0] == "retype" else None)
    path = paths[m[1] % len(paths)]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if m[0] == "delete":
        del parent[path[-1]]
        return json.dumps(doc)
    parent[path[-1]] = "__NEST__" if m[0] == "nest" else m[2]
    return json.dumps(doc).replace('"__NEST__"', "[" * NEST + "]" * NEST)


def _toml_mutation(text: str, m) -> str:
    if m[0] == "nest":
        return text + "\ndeep = " + "[" * NEST + "]" * NEST + "\n"
    lines = text.splitlines()
    keyed = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")]
    i = keyed[m[1] % len(keyed)]
    if m[0] == "delete":
        del lines[i]
    else:
        v = m[2]
        value = json.dumps(v) if not isinstance(v, (dict, type(None))) else ("{}" if v == {} else '"null"')
        lines[i] = lines[i].split("=", 1)[0] + "= " + value.replace("true", "true").replace("1e+308", "1e308")
    return "\n".join(lines) + "\n"


def _jsonl_mutation(data: bytes, m) -> bytes:
    lines = data.split(b"\n")
    j = m[1] % max(1, len(lines) - 1)
    inner = m[2]
    if inner == ("nul",):
        lines[j] = lines[j][:10] + b"\x00" + lines[j][10:]
    elif inner == ("latin1",):
        lines[j] = lines[j][:10] + b"\xe9" + lines[j][10:]
    else:
        lines[j] = _json_mutation(lines[j].decode(), inner).encode()
    return b"\n".join(lines)


def _rezip(data: bytes, how: str) -> bytes:
    """The archive again with every member deflated, plus a bomb member or with a corrupted stream."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info))
        if how == "bomb":
            z.writestr("bomb.npy", b"\0" * (4 << 20))
    body = bytearray(out.getvalue())
    if how == "corrupt-deflate":
        biggest = max(src.infolist(), key=lambda i: i.file_size)
        info = zipfile.ZipFile(io.BytesIO(bytes(body))).getinfo(biggest.filename)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for k in range(start + 2, start + min(info.compress_size, 64)):
            body[k] ^= 0x5A
    return bytes(body)


def _npy_huge(data: bytes) -> bytes:
    import numpy as np

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, info in enumerate(src.infolist()):
            body = src.read(info)
            if n == 0:
                hdr = io.BytesIO()
                np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)})
                body = hdr.getvalue() + b"\0" * 64
            z.writestr(info.filename, body)
    return out.getvalue()


@contextlib.contextmanager
def limited(kind: str, **limits):
    """`kind`'s limits lowered for one case (oversize files and bombs without writing gigabytes)."""
    old = readers.FILE_KINDS[kind]
    readers.FILE_KINDS[kind] = dataclasses.replace(old, **limits)
    try:
        yield
    finally:
        readers.FILE_KINDS[kind] = old


def apply(path: Path, fmt: str, m) -> dict:
    """Mutate the file at `path` in place; returns the limits to lower while it is read."""
    data = path.read_bytes()
    op = m[0]
    if op in ("fifo", "devzero", "folder"):
        path.unlink()
        {"fifo": lambda: os.mkfifo(path), "devzero": lambda: path.symlink_to("/dev/zero"),
         "folder": lambda: path.mkdir()}[op]()
        return {}
    if op == "oversize":
        return {"max_bytes": len(data) - 1}
    if op == "truncate":
        data = data[: int(len(data) * m[1])]
    elif op == "bitflip":
        if data:
            i = m[1] % len(data)
            data = data[:i] + bytes([data[i] ^ (1 << m[2])]) + data[i + 1:]
    elif op == "line":
        data = _jsonl_mutation(data, m)
    elif op in ("delete", "retype", "nest") and fmt == "json":
        data = _json_mutation(data.decode(), m).encode()
    elif op in ("delete", "retype", "nest"):
        data = _toml_mutation(data.decode(), m).encode()
    elif op == "bomb" and fmt == "gzip":
        data = gzip.compress(b"\0" * (4 << 20))
        path.write_bytes(data)
        return {"max_inflated": 1 << 20}
    elif op in ("bomb", "corrupt-deflate"):
        data = _rezip(data, op)
        path.write_bytes(data)
        return {"max_inflated": sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist()) - (1 << 20)} \
            if op == "bomb" else {}
    elif op == "npy-huge":
        data = _npy_huge(data)
    path.write_bytes(data)
    return {}


# ------------------------------------------------------------------ the checks


def snapshot(root: Path) -> dict:
    """relative path -> sha256 / 'dir' / 'fifo' / link target, without opening anything special."""
    import hashlib
    import stat

    out = {}
    for p in sorted(root.rglob("*")):
        rel, mode = str(p.relative_to(root)), os.lstat(p).st_mode
        if stat.S_ISLNK(mode):
            out[rel] = "link:" + os.readlink(p)
        elif stat.S_ISDIR(mode):
            out[rel] = "dir"
        elif stat.S_ISREG(mode):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


def read_within(fn, seconds: float = 120):
    """Run `fn` in a thread: ('ok', value), ('refused', message) or an AssertionError when it hangs."""
    box = {}

    def target():
        try:
            box["r"] = ("ok", fn())
        except EdgeBranchyError as e:
            box["r"] = ("refused", str(e))
        except BaseException as e:  # noqa: BLE001 - reported by the test, with its type
            box["r"] = ("crash", f"{type(e).__name__}: {e}")

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the reader hung"
    return box["r"]


def check_case(world, tmp_path_factory, kind: str, m) -> None:
    case = CASES[kind]
    d = tmp_path_factory.mktemp(kind)
    path = case.make(world, d)
    lowered = apply(path, case.fmt, m)
    before = snapshot(d)
    with limited(kind, **lowered):
        outcome, detail = read_within(lambda: case.read(world, path))
    assert outcome != "crash", (kind, m, detail)
    if outcome == "refused":
        assert "\n" not in detail.strip() and "Traceback" not in detail, detail
    elif m[0] in MUST_REFUSE and kind != "sniffed":
        pytest.fail(f"{kind}: {m[0]} was accepted")
    assert snapshot(d) == before, (kind, m)


def test_every_reader_has_a_strategy():
    assert set(CASES) == set(readers.FILE_KINDS), "a file kind without a case in reader_cases.py (or the reverse)"


@pytest.mark.parametrize("kind", sorted(CASES))
def test_mutated_files_are_read_or_refused_in_one_line(reader_world, tmp_path_factory, kind):
    @SETTINGS
    @given(mutations(CASES[kind].fmt))
    def prop(m):
        check_case(reader_world, tmp_path_factory, kind, m)

    prop()


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("op", ["fifo", "devzero", "folder", "oversize"])
def test_special_files_are_refused_without_reading(reader_world, tmp_path_factory, kind, op):
    """Every kind, every special file, deterministically (the property draws only some)."""
    check_case(reader_world, tmp_path_factory, kind, (op,))


@pytest.mark.parametrize("kind", [k for k, c in sorted(CASES.items()) if c.fmt in ("zip", "npz", "gzip")])
def test_bombs_and_corrupt_streams_are_refused(reader_world, tmp_path_factory, kind):
    ops = {"gzip": ["bomb"], "zip": ["bomb", "corrupt-deflate"], "npz": ["bomb", "corrupt-deflate", "npy-huge"]}
    for op in ops[CASES[kind].fmt]:
        check_case(reader_world, tmp_path_factory, kind, (op,))


@pytest.mark.parametrize("kind", [k for k, c in sorted(CASES.items()) if c.fmt in ("json", "toml", "jsonl")])
def test_deep_nesting_is_refused(reader_world, tmp_path_factory, kind):
    m = ("line", 0, ("nest", 3)) if CASES[kind].fmt == "jsonl" else ("nest", 3)
    check_case(reader_world, tmp_path_factory, kind, m)


# ------------------------------------------------------------------ no reader outside the gate

#: (module, attribute) calls that read a file of a kind without the gate; allowed only in these files
DIRECT = {("json", "load"), ("np", "load"), ("numpy", "load"), ("tomllib", "load"), ("tomllib", "loads"),
          ("tomli", "load"), ("tomli", "loads"), ("gzip", "open"), ("gzip", "decompress"), ("torch", "load"),
          ("tarfile", "open"), ("zipfile", "ZipFile"), ("pickle", "load"), ("pickle", "loads")}
ALLOWED = {"edgebranchy/util/readers.py": "the gate itself",
           "edgebranchy/models/checkpoint.py": "torch_load: the one torch.load, after readers.check_zip",
           "edgebranchy/util/kinds.py": "sniffs a zip's first member through readers.open_regular"}


def _writes(call: ast.Call) -> bool:
    """tarfile.open(..., mode="w") / ZipFile(..., "w"): writers, not readers."""
    modes = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
    return any(isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value[:1] in "wax" for a in modes)


def test_no_reader_bypasses_the_gate():
    from eb_testutil import ROOT

    found = []
    for p in sorted((ROOT / "edgebranchy").rglob("*.py")):
        rel = str(p.relative_to(ROOT))
        if rel in ALLOWED:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) \
                    and (node.func.value.id, node.func.attr) in DIRECT and not _writes(node):
                found.append(f"{rel}:{node.lineno} {node.func.value.id}.{node.func.attr}")
    assert not found, f"read through edgebranchy.util.readers instead: {found}"


def test_the_scan_sees_a_direct_load(tmp_path):
    tree = ast.parse("import numpy as np\nx = np.load('a.npz')\nimport tarfile\ntarfile.open('t', mode='w')\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert [(_writes(c), c.func.attr) for c in calls] == [(False, "load"), (True, "open")]
