"""The decoded-data cache: a second load reads the cache, gives the same arrays, and notices changes."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np

from eb_testutil import ROOT

from edgebranchy.data import cache, load_dataset


def _idx_files():
    spec = importlib.util.spec_from_file_location("data_idx_files", ROOT / "tests/data/data_idx_files.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _same(a, b):
    assert a.norm == b.norm and a.describe() == b.describe() and a.classes == b.classes
    for part in ("train", "val", "test"):
        pa, pb = getattr(a, part), getattr(b, part)
        assert pa.x.dtype == pb.x.dtype and np.array_equal(pa.x, pb.x) and np.array_equal(pa.y, pb.y)


def _entries():
    d = cache.cache_dir() / "datasets"
    return sorted(d.glob("*.npz")) if d.is_dir() else []


def test_the_fixture_points_the_cache_at_tmp_path(tmp_path):
    assert cache.cache_dir() == tmp_path / "edgebranchy-cache"


def test_second_load_comes_from_the_cache_and_is_identical(tmp_path, monkeypatch):
    d = tmp_path / "mnist"
    _idx_files().write_mnist_dir(d, n_train=40, n_test=10)
    first = load_dataset("mnist", d, val_size=8, seed=3)
    [entry] = _entries()
    # the cache is used: make decoding impossible and load again
    import edgebranchy.data.idx as idx

    monkeypatch.setattr(idx, "load_idx_dir", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    second = load_dataset("mnist", d, val_size=8, seed=3)
    _same(first, second)
    # another split is another entry (decoded, not a wrong cached split)
    monkeypatch.undo()
    monkeypatch.setenv("EDGEBRANCHY_CACHE", str(tmp_path / "edgebranchy-cache"))
    other = load_dataset("mnist", d, val_size=8, seed=4)
    assert len(_entries()) == 2 and entry in _entries()
    _same(other, load_dataset("mnist", d, val_size=8, seed=4, limit=None))
    assert sorted(other.val.y.tolist() + other.train.y.tolist()) == sorted(first.val.y.tolist() +
                                                                           first.train.y.tolist())


def test_a_changed_source_file_is_decoded_again(tmp_path):
    d = tmp_path / "mnist"
    m = _idx_files()
    m.write_mnist_dir(d, n_train=40, n_test=10, seed=0)
    a = load_dataset("mnist", d, val_size=8)
    m.write_mnist_dir(d, n_train=40, n_test=10, seed=1)  # same names and sizes, other pixels
    b = load_dataset("mnist", d, val_size=8)
    assert not np.array_equal(a.train.x, b.train.x)
    assert len(_entries()) == 2


def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path):
    d = tmp_path / "mnist"
    _idx_files().write_mnist_dir(d, n_train=40, n_test=10)
    a = load_dataset("mnist", d, val_size=8)
    [entry] = _entries()
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    b = load_dataset("mnist", d, val_size=8)
    _same(a, b)
    assert entry.stat().st_size > 100  # rewritten whole
    entry.write_bytes(b"not a zip at all")
    _same(a, load_dataset("mnist", d, val_size=8))


def test_off_disables_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBRANCHY_CACHE", "off")
    assert cache.cache_dir() is None
    d = tmp_path / "mnist"
    _idx_files().write_mnist_dir(d, n_train=40, n_test=10)
    load_dataset("mnist", d, val_size=8)
    assert not (tmp_path / "edgebranchy-cache").exists()


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("EDGEBRANCHY_CACHE", str(blocker))
    d = tmp_path / "mnist"
    _idx_files().write_mnist_dir(d, n_train=40, n_test=10)
    assert len(load_dataset("mnist", d, val_size=8).train) == 32


def test_the_cli_says_where_it_loads_from(tmp_path):
    """A command prints a note on stderr before decoding, and says when it used the cache."""
    d = tmp_path / "mnist"
    _idx_files().write_mnist_dir(d, n_train=60, n_test=20)
    code = ("from edgebranchy.util import talk; talk.enable(); from edgebranchy.data import load_dataset; "
            f"load_dataset('mnist', {str(d)!r}, val_size=10)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r1 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    r2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert f"loading mnist from {d} (decoding, cached for next time) ..." in r1.stderr
    assert f"loading mnist from {d} (decoded copy in the cache) ..." in r2.stderr
