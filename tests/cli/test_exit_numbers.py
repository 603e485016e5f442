"""Exits keep the numbers calibrate gave them once export fused a side exit away (issue 24 item 5): predict
names each segment's exit with the model's number beside it."""
from __future__ import annotations

import shutil

from eb_testutil import run_cli


def test_predict_shows_the_model_exit_of_a_fused_artifact(tiny_checkpoint, tmp_path):
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.calibration import calibrate_checkpoint
    from edgebranchy.export.onnx import export_checkpoint

    ck = tmp_path / "off.pt"
    shutil.copy(tiny_checkpoint, ck)
    calibrate_checkpoint(ck, thresholds=[0.0], log=lambda s: None)  # exit 0 lets no sample out: fused away
    art = export_checkpoint(ck, tmp_path / "art", check_samples=8, log=lambda s: None)
    a = Artifact.load(art)
    assert a.model_exits == [1] and a.exit_names() == ["exit 0 (model exit 1)"]
    r = run_cli("predict", art, "--dataset", "synthetic", "--samples", "30")
    assert r.returncode == 0, r.stderr
    assert "exit 0 (model exit 1):     30 samples (100.0%)" in r.stdout, r.stdout


def test_bench_and_report_name_the_model_exit_of_a_fused_artifact(tiny_checkpoint, tmp_path):
    """bench records each exit's model number (environment.model_exits); the report's exit histogram and its
    text say `exit 0 (model exit 1)`, as predict and calibrate do."""
    import json

    from edgebranchy.calibration import calibrate_checkpoint
    from edgebranchy.export.onnx import export_checkpoint

    ck = tmp_path / "off.pt"
    shutil.copy(tiny_checkpoint, ck)
    calibrate_checkpoint(ck, thresholds=[0.0], log=lambda s: None)
    art = export_checkpoint(ck, tmp_path / "art", check_samples=8, log=lambda s: None)
    out = tmp_path / "r.json"
    r = run_cli("bench", art, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic", "--samples",
                "20", "--trials", "2", "--warmup", "1", "--warmup-max", "0", "--min-window", "0", "--idle", "0",
                "--backend", "onnxruntime", "--out", out)
    assert r.returncode == 0, r.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["environment"]["model_exits"] == [1]
    r = run_cli("report", out, "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "exit 0 (model exit 1) 100.0%" in (tmp_path / "rep" / "report.md").read_text()
    doc = json.loads(out.read_text())
    for bad in ([1, 2], ["1"], [-1]):  # one entry per exit, whole numbers, never below the exit's position
        doc["runs"][0]["environment"]["model_exits"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(doc))
        r = run_cli("report", tmp_path / "bad.json", "--out", tmp_path / "rep2")
        assert r.returncode == 2 and "model_exits" in r.stderr, (bad, r.stderr)


def test_exit_label():
    from edgebranchy.artifact.manifest import exit_label

    assert [exit_label(k, [0, 2]) for k in range(2)] == ["exit 0", "exit 1 (model exit 2)"]
    assert exit_label(1, None) == "exit 1"
