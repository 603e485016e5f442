"""check_output: an output never is, contains or lies inside an input; --force replaces only its own kind."""
from __future__ import annotations

import json
import os

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.kinds import REPORT_MARKER
from edgebranchy.util.outputs import check_output


def _err(fn) -> str:
    with pytest.raises(EdgeBranchyError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_output_is_input(tmp_path):
    ck = tmp_path / "m.pt"
    ck.write_bytes(b"x")
    msg = _err(lambda: check_output(ck, [ck], "artifact", force=True))
    assert str(ck) in msg and "input" in msg


def test_output_contains_input(tmp_path):
    ck = tmp_path / "runs" / "m.pt"
    ck.parent.mkdir()
    ck.write_bytes(b"x")
    msg = _err(lambda: check_output(tmp_path / "runs", [ck], "artifact", force=True))
    assert "contains the input" in msg and str(ck) in msg


def test_output_inside_input(tmp_path):
    art = tmp_path / "art"
    (art / "segments").mkdir(parents=True)
    for out in (art / "manifest.json", art / "segments" / "seg0.onnx", art / "new" / "r.json"):
        msg = _err(lambda: check_output(out, [art], "results", force=True))
        assert "lies inside" in msg and str(art) in msg


def test_symlinked_output_is_resolved(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    (tmp_path / "link").symlink_to(art)
    _err(lambda: check_output(tmp_path / "link" / "results.json", [art], "results"))
    _err(lambda: check_output(art / "results.json", [tmp_path / "link"], "results"))
    assert check_output(tmp_path / "other.json", [tmp_path / "link"], "results") == tmp_path / "other.json"


def test_force_replaces_only_the_same_kind(tmp_path):
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"schema": "edgebranchy.results"}))
    assert "pass `force`" in _err(lambda: check_output(res, [], "results"))  # the CLI shows --force
    assert check_output(res, [], "results", force=True) == res
    # an arbitrary file is never replaced, --force or not
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    msg = _err(lambda: check_output(other, [], "results", force=True))
    assert "did not write" in msg
    # an arbitrary folder is never replaced by an artifact
    d = tmp_path / "stuff"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    _err(lambda: check_output(d, [], "artifact", force=True))
    # ... nor a report by an artifact
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.md").write_text("x")
    (rep / REPORT_MARKER).write_text(json.dumps({"schema": "edgebranchy.report"}))
    _err(lambda: check_output(rep, [], "artifact", force=True))
    assert check_output(rep, [], "report", force=True) == rep


def test_empty_folder_is_usable(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    assert check_output(d, [], "artifact") == d


def test_file_kind_into_folder(tmp_path):
    msg = _err(lambda: check_output(tmp_path, [], "checkpoint", force=True))
    assert "is a folder" in msg


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_unwritable_places(tmp_path):
    _err(lambda: check_output("/proc/edgebranchy-test/out.json", [], "results"))
    f = tmp_path / "file"
    f.write_text("x")
    assert "is a file" in _err(lambda: check_output(f / "sub" / "out.json", [], "results"))


def test_read_only_folder(tmp_path, monkeypatch):
    import errno
    import tempfile

    def refuse(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    msg = _err(lambda: check_output(tmp_path / "out.json", [], "results"))
    assert "Read-only file system" in msg and str(tmp_path) in msg


def test_hard_link_to_an_input(tmp_path):
    ck = tmp_path / "m.pt"
    ck.write_bytes(b"x")
    os.link(ck, tmp_path / "alias.pt")
    msg = _err(lambda: check_output(tmp_path / "alias.pt", [ck], "results", force=True))
    assert "is the input" in msg


def test_data_dir_may_hold_outputs_but_not_be_replaced(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert check_output(data / "art", [], "artifact", data_dirs=[data]) == data / "art"
    _err(lambda: check_output(data, [], "artifact", force=True, data_dirs=[data]))
    _err(lambda: check_output(tmp_path, [], "artifact", force=True, data_dirs=[data]))
