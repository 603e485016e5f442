"""The pipeline commands through the CLI: calibrate, export, predict, quickstart, and their user errors."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from edgebranchy.cli import main
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.models.checkpoint import load_checkpoint


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path):
    dst = tmp_path / "m.pt"
    shutil.copy(tiny_checkpoint, dst)
    return dst


def test_calibrate_cli_stores_and_prints(ckpt, capsys):
    assert main(["calibrate", str(ckpt), "--max-accuracy-drop", "1.0", "--temperature"]) == 0
    out = capsys.readouterr().out
    assert "accuracy-versus-cost frontier" in out and "threshold search:" in out and "temperatures" in out
    rec = load_checkpoint(ckpt).config["calibration"]
    assert rec["method"] == "max-accuracy-drop" and rec["target"] == 1.0 and len(rec["temperatures"]) == 2
    assert rec["validation"]["accuracy"] >= rec["final_exit_accuracy"]["validation"] - 0.01 - 1e-9
    assert rec["test"]["n"] > 0 and rec["frontier"]
    # the printed test accuracy is the stored one
    assert f"{rec['test']['accuracy'] * 100:.2f}" in out


def test_calibrate_cli_budget_and_hand_picked(ckpt, capsys):
    assert main(["calibrate", str(ckpt), "--budget", "0.6", "--reference", "baseline"]) == 0
    rec = load_checkpoint(ckpt).config["calibration"]
    assert rec["method"] == "budget" and rec["validation"]["relative_cost"] <= 0.6 + 1e-9
    assert main(["calibrate", str(ckpt), "--thresholds", "0.025"]) == 0
    rec = load_checkpoint(ckpt).config["calibration"]
    assert rec["method"] == "manual" and rec["thresholds"] == [0.025] and rec["frontier"] is None


@pytest.mark.parametrize("argv, phrase", [
    (["--max-accuracy-drop", "-1"], "--max-accuracy-drop"),
    (["--budget", "0"], "budget"),
    (["--thresholds", "0.1,0.2"], "thresholds"),
    (["--cost", "no-such-results.json"], "not found"),
])
def test_calibrate_cli_user_errors(ckpt, capsys, argv, phrase):
    before = ckpt.read_bytes()
    assert main(["calibrate", str(ckpt), *argv]) == 2
    assert phrase in _err_line(capsys)
    assert ckpt.read_bytes() == before  # nothing written on failure


def test_calibrate_cli_rejects_non_checkpoint(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_text("hello")
    assert main(["calibrate", str(bad)]) == 2
    assert "checkpoint" in _err_line(capsys)


def test_export_and_predict_cli(tiny_calibrated, tmp_path, capsys):
    out = tmp_path / "art"
    assert main(["export", str(tiny_calibrated), "--out", str(out), "--data-dir", str(tmp_path)]) == 0
    assert "artifact:" in capsys.readouterr().out
    art = Artifact.load(out)
    assert art.num_exits == 2 and art.calibrated
    assert main(["predict", str(out), "--dataset", "synthetic", "--samples", "40", "--batch-size", "8"]) == 0
    text = capsys.readouterr().out
    counts = [int(m) for m in re.findall(r"exit \d+:\s+(\d+) samples", text)]
    assert sum(counts) == 40 and "branchy  accuracy" in text


@pytest.mark.parametrize("argv, phrase", [
    (lambda ck, tmp: ["export", str(ck)], "--out"),
    (lambda ck, tmp: ["export", str(tmp), "--out", str(tmp / "a")], "directory"),
    (lambda ck, tmp: ["export", str(tmp / "missing.pt"), "--out", str(tmp / "a")], "not found"),
    (lambda ck, tmp: ["predict", str(tmp / "no-artifact")], "not found"),
])
def test_export_predict_user_errors(tiny_calibrated, tmp_path, capsys, argv, phrase):
    assert main(argv(tiny_calibrated, tmp_path)) == 2
    assert phrase in _err_line(capsys)
    assert not (tmp_path / "a").exists()


def test_predict_refuses_bad_sample_count(tiny_artifact, capsys):
    assert main(["predict", str(tiny_artifact), "--dataset", "synthetic", "--samples", "-3"]) == 2
    assert "--samples" in _err_line(capsys)


def test_quickstart_end_to_end_on_synthetic(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--dataset", "synthetic", "--epochs", "1", "--trials", "1", "--samples", "30",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for n in range(1, 6):
        assert f"[{n}/5]" in text
    res = json.loads((out / "results.json").read_text())["runs"][0]
    assert res["variants"]["branchy"]["energy"]["kind"] in ("estimated", "measured")
    assert (out / "report" / "report.html").is_file() and (out / "b-lenet.pt").is_file()
    Artifact.load(out / "artifact")


def test_log_every_prints_running_loss(tmp_path, capsys):
    assert main(["train", "--dataset", "synthetic", "--limit", "300", "--epochs", "1", "--baseline-epochs", "0",
                 "--batch-size", "32", "--log-every", "3", "--out", str(tmp_path / "m.pt")]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if "running mean" in l]
    assert len(lines) == -(-270 // 32) // 3 and lines[0].startswith("joint epoch 1 step 3/")
