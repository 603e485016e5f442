"""The audit's reader cases, each enumerated: every field under runs[*].gains deleted or retyped (report and
compare), every field of every trial-log record retyped, NUL and non-UTF-8 lines, checkpoint config fields of
the wrong type, resume states out of range, EDGEBRANCHY_CACHE=~nosuchuser, and a few real subprocesses (a FIFO
manifest, /dev/zero as a results file, a deeply nested results file). One line, exit 2, nothing written.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from edgebranchy.errors import EdgeBranchyError
from rel_util import cli, one_error_line, tree
from test_readers_property import _paths, read_within

#: gains keys a results file may leave out (run_gains writes them only sometimes)
OPTIONAL_GAINS = {"note", "expected", "cost_source", "split", "at_run_exits", "kind"}


def _gains_cases(doc):
    gains = doc["runs"][0]["gains"]
    for path in _paths(gains):
        if isinstance(path[-1], str):  # a field (deleting a list's entry leaves a shorter, valid list)
            yield "delete", path
        yield "retype", path


def _leaf(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    return obj


def test_every_gains_field_deleted_or_retyped(reader_world, tmp_path):
    doc = json.loads(reader_world.results.read_text())
    cases = list(_gains_cases(doc))
    assert len(cases) >= 68  # the audit's 34 fields, both ways
    for n, (op, path) in enumerate(cases):
        bad = json.loads(reader_world.results.read_text())
        parent = _leaf(bad["runs"][0]["gains"], path)
        if op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = "x" if isinstance(parent[path[-1]], (dict, list)) else {}
        d = tmp_path / f"c{n}"
        d.mkdir()
        (d / "r.json").write_text(json.dumps(bad))
        before = tree(d)
        for argv in (["compare", d / "r.json", reader_world.results], ["report", d / "r.json", "--out", d / "rep"]):
            rc, _, err = cli(*argv)
            if op == "delete" and path[-1] in OPTIONAL_GAINS:
                assert rc in (0, 2), (op, path, err)
            else:
                assert rc == 2, (op, path, argv[0], err)
                assert "gains" in one_error_line(err, argv[0])
            if rc == 2:
                assert tree(d) == before, (op, path)
            shutil.rmtree(d / "rep", ignore_errors=True)


def test_every_trial_log_field_retyped(reader_world, tmp_path):
    from edgebranchy.bench.trial_log import read_log

    lines = reader_world.trial_log.read_bytes().split(b"\n")
    refused = 0
    for j, line in enumerate(lines[:-1]):
        rec = json.loads(line)
        for path in [p for p in _paths(rec) if len(p) <= 2]:
            for wrong in ("x", None, [], {}):
                bad = json.loads(line)
                _leaf(bad, path)[path[-1]] = wrong
                p = tmp_path / "r.json.jsonl"
                p.write_bytes(b"\n".join(lines[:j] + [json.dumps(bad).encode()] + lines[j + 1:]))
                outcome, detail = read_within(lambda: read_log(p))
                assert outcome in ("ok", "refused"), (j, path, wrong, detail)
                refused += outcome == "refused"
    assert refused >= 49


@pytest.mark.parametrize("damage", [b"\x00", b"\xff\xfe", b"\xe9"])
def test_nul_and_non_utf8_lines_are_refused_by_resume(reader_world, tmp_path, damage):
    from edgebranchy.bench.trial_log import read_log

    lines = reader_world.trial_log.read_bytes().split(b"\n")
    lines[2] = lines[2][:20] + damage + lines[2][20:]
    p = tmp_path / "r.json.jsonl"
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(EdgeBranchyError, match="line 3") as e:
        read_log(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field, value", [(("dataset", "source"), 7), (("dataset", "val"), "200"),
                                          (("dataset", "split_seed"), [0]), (("dataset",), "synthetic"),
                                          (("train",), 3), (("train", "epochs"), "one"),
                                          (("train", "history"), {"a": 1}), (("dataset", "split"), [1])])
def test_checkpoint_config_fields_of_the_wrong_type(reader_world, tmp_path, field, value):
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint

    ck = load_checkpoint(reader_world.checkpoint)
    cfg = ck.config
    _leaf(cfg, field)[field[-1]] = value
    p = tmp_path / "bad.pt"
    torch.save({"format": "edgebranchy.checkpoint", "version": 1, "config": json.dumps(cfg),
                "branchy": ck.branchy_state, "baseline": ck.baseline_state}, p)
    before = tree(tmp_path)
    for argv in (["calibrate", p, "--in-place", "--thresholds", "0.1"], ["export", p, "--out", tmp_path / "a"]):
        rc, _, err = cli(*argv)
        assert rc == 2, (field, value, argv[0], err)
        assert "checkpoint config" in one_error_line(err)
        assert tree(tmp_path) == before


def test_a_corrupt_deflate_stream_in_a_checkpoint(reader_world, tmp_path):
    from test_readers_property import _rezip

    p = tmp_path / "m.pt"
    p.write_bytes(_rezip(reader_world.checkpoint.read_bytes(), "corrupt-deflate"))
    before = tree(tmp_path)
    for argv in (["export", p, "--out", tmp_path / "a"], ["calibrate", p, "--in-place", "--thresholds", "0.1"]):
        rc, _, err = cli(*argv)
        assert rc == 2, err
        one_error_line(err)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("changes", [{"epoch": 7}, {"epoch": -1}, {"phase_index": 2}, {"phase_index": -1},
                                     {"epoch": "1"}, {"phase_index": 0.5}, {"net": [1]}, {"history": "x"},
                                     {"history": [{"phase": 1, "steps": 2}]}, {"rng": "abc"}, {"optimizer": None},
                                     {"epoch": True}])
def test_resume_state_wrong_types_or_out_of_range(reader_world, tmp_path, changes):
    import torch

    st = torch.load(reader_world.resume, weights_only=True)
    st.update(changes)
    p = tmp_path / "t.pt.resume"
    buf = io.BytesIO()
    torch.save(st, buf)
    p.write_bytes(buf.getvalue())
    t = reader_world.trainer
    t.resume_path = p
    with pytest.raises(EdgeBranchyError) as e:
        t._load_resume()
    assert "\n" not in str(e.value) and "resume" in str(e.value)


def test_a_cache_under_an_unknown_home(reader_world, tmp_path, monkeypatch):
    import gzip
    import struct

    import numpy as np

    (tmp_path / "mnist").mkdir()
    for prefix, n in (("train", 30), ("t10k", 12)):
        x = np.zeros((n, 28, 28), np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            head = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
            (tmp_path / "mnist" / (stem + ".gz")).write_bytes(gzip.compress(head + arr.tobytes()))
    monkeypatch.setenv("EDGEBRANCHY_CACHE", "~nosuchuser-eb29/x")
    rc, _, err = cli("predict", reader_world.art, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "mnist",
                     "--samples", "4")
    assert rc == 2, err
    assert "EDGEBRANCHY_CACHE" in one_error_line(err, "predict")


# ------------------------------------------------------------------ real subprocesses


def _run(*argv, timeout=120):
    from eb_testutil import ROOT

    return subprocess.run([sys.executable, "-m", "edgebranchy", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "EDGEBRANCHY_CACHE": "off"})


def test_a_fifo_manifest_is_refused_by_every_command(reader_world, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(reader_world.art, art)
    (art / "manifest.json").unlink()
    os.mkfifo(art / "manifest.json")
    before = tree_special(tmp_path)
    for argv in (["predict", art, "--dataset", "synthetic"],
                 ["bench", art, "--profile", "x86-cpu", "--out", tmp_path / "r.json"],
                 ["calibrate", art, "--in-place", "--thresholds", "0.1"]):
        r = _run(*argv)  # a hang is a TimeoutExpired
        assert r.returncode == 2, (argv[0], r.stderr)
        assert "FIFO" in one_error_line(r.stderr, argv[0])
    assert tree_special(tmp_path) == before


def tree_special(root):
    from test_readers_property import snapshot

    return snapshot(root)


def test_dev_zero_and_deep_nesting_as_results_files(reader_world, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"schema": "edgebranchy.results", "runs": ' + "[" * 200_000 + "]" * 200_000 + "}")
    for argv in (["report", "/dev/zero", "--out", tmp_path / "rep"], ["compare", "/dev/zero", reader_world.results],
                 ["report", deep, "--out", tmp_path / "rep"], ["compare", reader_world.results, deep]):
        r = _run(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        one_error_line(r.stderr, argv[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.json"]


def test_onnx_external_data_is_refused(reader_world, tmp_path):
    """A segment re-saved with its weights in an external file (hashed in the manifest, the data file not):
    ONNX Runtime would load the unhashed file; the artifact is refused instead."""
    import onnx

    from edgebranchy.util.files import sha256_file

    art = tmp_path / "art"
    shutil.copytree(reader_world.art, art)
    m = json.loads((art / "manifest.json").read_text())
    rel = m["segments"][0]["file"]
    model = onnx.load(str(art / rel))
    onnx.save_model(model, str(art / rel), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=1024)  # the weights; small constants stay inline
    assert (art / rel).with_name("weights.bin").is_file()
    m["files"][rel]["sha256"] = sha256_file(art / rel)
    (art / "manifest.json").write_text(json.dumps(m))
    before = tree(tmp_path)
    rc, _, err = cli("predict", art, "--dataset", "synthetic", "--samples", "4")
    assert rc == 2, err
    assert "sha256 does not cover" in one_error_line(err, "predict")
    assert tree(tmp_path) == before
