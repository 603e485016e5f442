"""Every OSError at a write is one line naming the path and the cause, and nothing half-written remains
(items 8, 13). Faults are injected at fsync (disk full / read-only after the work), and, where this
machine allows it, on real read-only and full tmpfs mounts."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess

import pytest

from rel_util import cli, one_error_line, tree


@pytest.fixture
def disk_full(monkeypatch):
    """Every fsync fails as on a full disk: the data never reaches it."""
    def fail(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fail)


def _no_temp_left(folder):
    left = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not left, f"left behind: {left}"


@pytest.fixture
def results_file(tiny_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "r.json"
    rc, _, err = cli("bench", tiny_artifact, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                     "--samples", "8", "--trials", "2", "--warmup", "1", "--min-window", "0", "--idle", "0",
                     "--out", out)
    assert rc == 0, err
    return out


def test_report_on_a_full_disk_leaves_nothing(results_file, tmp_path, disk_full):
    out = tmp_path / "rep"
    rc, _, err = cli("report", results_file, "--out", out)
    line = one_error_line(err, "report")
    assert rc == 2 and "No space left on device" in line and str(tmp_path) in line
    assert not out.exists()
    _no_temp_left(tmp_path)


def test_report_on_a_full_disk_keeps_the_earlier_report(results_file, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    assert cli("report", results_file, "--out", out)[0] == 0
    before = tree(out)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    rc, _, err = cli("report", results_file, "--out", out)
    assert rc == 2 and one_error_line(err, "report")
    assert tree(out) == before
    _no_temp_left(tmp_path)


def test_export_on_a_full_disk(tiny_calibrated, tmp_path, disk_full):
    out = tmp_path / "art"
    rc, _, err = cli("export", tiny_calibrated, "--out", out, "--no-simplify", "--check-samples", "4")
    line = one_error_line(err, "export")
    assert rc == 2 and "No space left on device" in line
    assert not out.exists()
    _no_temp_left(tmp_path)


def test_calibrate_on_a_read_only_disk(tiny_calibrated, tmp_path, monkeypatch):
    ck = tmp_path / "m.pt"
    shutil.copy(tiny_calibrated, ck)
    before = ck.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EROFS, os.strerror(errno.EROFS))))
    rc, _, err = cli("calibrate", ck, "--in-place", "--thresholds", "0.2")
    line = one_error_line(err, "calibrate")
    assert rc == 2 and "Read-only file system" in line and str(ck) in line
    assert ck.read_bytes() == before
    _no_temp_left(tmp_path)


def test_train_on_a_full_disk(tmp_path, disk_full):
    out = tmp_path / "m.pt"
    rc, _, err = cli("train", "--dataset", "synthetic", "--samples", "200", "--epochs", "1", "--baseline-epochs", "0",
                     "--max-steps", "1", "--quiet", "--out", out)
    assert rc == 2 and "No space left on device" in one_error_line(err, "train")
    assert not out.exists()
    _no_temp_left(tmp_path)


def test_bench_on_a_full_disk(tiny_artifact, tmp_path, disk_full):
    out = tmp_path / "r.json"
    rc, _, err = cli("bench", tiny_artifact, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                     "--samples", "4", "--trials", "1", "--warmup", "1", "--min-window", "0", "--idle", "0",
                     "--out", out)
    line = one_error_line(err, "bench")
    assert rc == 2 and "No space left on device" in line and "r.json" in line
    assert not out.exists()


def test_unwritable_out_refused_before_work(tmp_path):
    rc, out, err = cli("train", "--dataset", "synthetic", "--samples", "200", "--quiet", "--out", "/proc/eb/m.pt")
    assert rc == 2 and "/proc" in one_error_line(err, "train") and out == ""
    rc, out, err = cli("report", tmp_path / "none.json", "--out", "/proc/eb-report")
    assert rc == 2 and one_error_line(err, "report")


# ------------------------------------------------------------- real file systems, where mount is allowed

@contextlib.contextmanager
def _tmpfs(where, options):
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()[:80]})")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting needs root")


@needs_root
def test_real_read_only_file_system(tiny_calibrated, tiny_artifact, tmp_path):
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        for argv in (["train", "--dataset", "synthetic", "--samples", "200", "--quiet", "--out", ro / "m.pt"],
                     ["export", tiny_calibrated, "--out", ro / "art"],
                     ["bench", tiny_artifact, "--profile", "x86-cpu", "--out", ro / "r.json"]):
            rc, out, err = cli(*argv)
            line = one_error_line(err)
            assert rc == 2 and "Read-only file system" in line and str(ro) in line, line
        assert list(ro.iterdir()) == []


@needs_root
def test_real_full_file_system(tiny_calibrated, tmp_path):
    with _tmpfs(tmp_path / "full", "size=64k") as full:
        rc, _, err = cli("export", tiny_calibrated, "--out", full / "art", "--no-simplify", "--check-samples", "4")
        assert rc == 2 and "No space left on device" in one_error_line(err, "export")
        assert list(full.iterdir()) == []
