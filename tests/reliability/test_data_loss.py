"""No command destroys what it reads or what the user did not name (audit items 1-3, 6, 7)."""
from __future__ import annotations

import json
import shutil

import pytest

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.util.kinds import what_is

from rel_util import cli, one_error_line, tree


@pytest.fixture
def ckpt(tiny_calibrated, tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    dst = d / "m.pt"
    shutil.copy(tiny_calibrated, dst)
    (d / "notes.txt").write_text("the user's own file")
    return dst


def test_export_force_never_replaces_its_input(ckpt, tmp_path):
    before = tree(tmp_path)
    for out in (ckpt, ckpt.parent, tmp_path):
        rc, _, err = cli("export", ckpt, "--out", out, "--force")
        line = one_error_line(err, "export")
        assert rc == 2 and str(ckpt) in line and str(out) in line
    assert tree(tmp_path) == before


def test_export_force_never_replaces_a_foreign_folder(ckpt, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    before = tree(tmp_path)
    rc, _, err = cli("export", ckpt, "--out", other, "--force")
    assert rc == 2 and "not an edgebranchy artifact" in one_error_line(err, "export")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("inside", ["manifest.json", "segments/seg0.onnx", "segments", ".", "new/r.json"])
def test_bench_out_inside_the_artifact(art, inside):
    before = tree(art)
    rc, _, err = cli("bench", art, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                     "--out", art / inside)
    assert rc == 2, err
    assert str(art) in one_error_line(err, "bench")
    assert tree(art) == before
    Artifact.load(art)  # still whole


def _bench_args(art, out):
    return ["bench", art, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic", "--samples", "8",
            "--trials", "1", "--warmup", "1", "--min-window", "0", "--idle", "0", "--out", out]


def test_bench_rerun_keeps_the_earlier_trial_log(art, tmp_path):
    out = tmp_path / "r.json"
    log = tmp_path / "r.json.jsonl"
    # what a killed run leaves: the start record and finished trials, no results file
    log.write_text("\n".join(json.dumps(r) for r in [
        {"type": "start", "environment": {}, "config": {}},
        {"type": "trial", "trial": 0, "variant": "baseline", "latency_ms": [1.0]}]) + "\n")
    before = tree(tmp_path)
    rc, _, err = cli(*_bench_args(art, out))
    line = one_error_line(err, "bench")
    assert rc == 2 and "--resume" in line and "new --out" in line and str(log) in line
    assert tree(tmp_path) == before


def test_bench_force_replaces_only_its_own_results(art, tmp_path):
    out = tmp_path / "r.json"
    rc, _, err = cli(*_bench_args(art, out))
    assert rc == 0, err
    assert what_is(out) == "results" and what_is(tmp_path / "r.json.jsonl") == "trial-log"
    rc, _, err = cli(*_bench_args(art, out))  # a finished run is not silently replaced either
    assert rc == 2 and "--force" in one_error_line(err, "bench")
    rc, _, err = cli(*_bench_args(art, out), "--force")
    assert rc == 0, err
    foreign = tmp_path / "notes.json"
    foreign.write_text("{}")
    rc, _, err = cli(*_bench_args(art, foreign), "--force")
    assert rc == 2 and foreign.read_text() == "{}"


def test_bench_out_existing_folder_refused_before_work(art, tmp_path):
    (tmp_path / "runs").mkdir()
    rc, out, err = cli(*_bench_args(art, tmp_path / "runs"))
    assert rc == 2 and "is a folder" in one_error_line(err, "bench")
    assert "profile:" not in out  # refused before anything ran


def test_train_out_existing_folder_refused_before_training(tmp_path):
    before = tree(tmp_path)
    rc, out, err = cli("train", "--dataset", "synthetic", "--samples", "200", "--max-steps", "1", "--quiet",
                       "--out", tmp_path)
    assert rc == 2 and "is a folder" in one_error_line(err, "train")
    assert out == "" and tree(tmp_path) == before


def test_train_refuses_a_foreign_file(tmp_path):
    f = tmp_path / "paper.pdf"
    f.write_bytes(b"%PDF-1.4")
    rc, _, err = cli("train", "--dataset", "synthetic", "--samples", "200", "--max-steps", "1", "--quiet", "--out", f)
    assert rc == 2 and "did not write" in one_error_line(err, "train")
    assert f.read_bytes() == b"%PDF-1.4"


def test_calibrate_bad_option_leaves_the_checkpoint(ckpt):
    before = ckpt.read_bytes()
    for bad in (["--frontier-rows", "-1"], ["--thresholds=-1"], ["--budget", "0"], ["--max-accuracy-drop", "nan"]):
        rc, _, err = cli("calibrate", ckpt, "--in-place", *bad)
        assert rc == 2
        one_error_line(err, "calibrate")
    assert ckpt.read_bytes() == before


def test_calibrate_api_refuses_bad_thresholds(ckpt):
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.calibration import calibrate_checkpoint

    before = ckpt.read_bytes()
    for ts in ([-1.0], [True], ["a"], [0.1, 0.2], [float("inf")]):
        with pytest.raises(EdgeBranchyError, match="thresholds"):
            calibrate_checkpoint(ckpt, thresholds=ts, log=lambda s: None)
    for kw in ({"budget": 0}, {"budget": 2}, {"max_accuracy_drop": -1}, {"max_accuracy_drop": float("nan")}):
        with pytest.raises(EdgeBranchyError):
            calibrate_checkpoint(ckpt, log=lambda s: None, **kw)
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("argv, phrase", [
    (["--profile", "nosuch"], "nosuch"),
    (["--trials", "0"], "--trials"),
    (["--samples", "-1"], "--samples"),
    (["--epochs", "0"], "--epochs"),
])
def test_quickstart_checks_everything_before_training(tmp_path, argv, phrase):
    out = tmp_path / "q"
    rc, stdout, err = cli("quickstart", "--dataset", "synthetic", "--out", out, *argv)
    assert rc == 2 and phrase in one_error_line(err, "quickstart")
    assert "[1/5]" not in stdout and not out.exists()


def test_quickstart_refuses_foreign_files_in_its_folder(tmp_path):
    out = tmp_path / "q"
    out.mkdir()
    (out / "results.json").write_text("my notes")
    rc, stdout, err = cli("quickstart", "--dataset", "synthetic", "--out", out, "--force")
    assert rc == 2 and "results.json" in one_error_line(err, "quickstart")
    assert "[1/5]" not in stdout and (out / "results.json").read_text() == "my notes"
