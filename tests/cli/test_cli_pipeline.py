"""The pipeline commands through the CLI: calibrate, export, predict, quickstart, and their user errors."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from edgebranchy.cli import main
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.models.checkpoint import load_checkpoint
from edgebranchy.util.talk import is_note


def _err_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not is_note(ln)]  # progress notes
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path):
    dst = tmp_path / "m.pt"
    shutil.copy(tiny_checkpoint, dst)
    return dst


def test_calibrate_cli_stores_and_prints(ckpt, capsys):
    assert main(["calibrate", str(ckpt), "--in-place", "--max-accuracy-drop", "1.0", "--temperature"]) == 0
    out = capsys.readouterr().out
    assert "accuracy-versus-cost frontier" in out and "threshold search:" in out and "temperatures" in out
    rec = load_checkpoint(ckpt).config["calibration"]
    assert rec["method"] == "max-accuracy-drop" and rec["target"] == 1.0 and len(rec["temperatures"]) == 2
    assert rec["validation"]["accuracy"] >= rec["final_exit_accuracy"]["validation"] - 0.01 - 1e-9
    assert rec["test"]["n"] > 0 and rec["frontier"]
    # the printed test accuracy is the stored one
    assert f"{rec['test']['accuracy'] * 100:.2f}" in out


def test_calibrate_cli_budget_and_hand_picked(ckpt, capsys):
    assert main(["calibrate", str(ckpt), "--in-place", "--budget", "0.6", "--reference", "baseline"]) == 0
    rec = load_checkpoint(ckpt).config["calibration"]
    assert rec["method"] == "budget" and rec["validation"]["relative_cost"] <= 0.6 + 1e-9
    assert main(["calibrate", str(ckpt), "--in-place", "--thresholds", "0.025", "--cost", "flops"]) == 0
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
    assert main(["calibrate", str(ckpt), "--in-place", *argv]) == 2
    assert phrase in _err_line(capsys)
    assert ckpt.read_bytes() == before  # nothing written on failure


def test_calibrate_cli_rejects_non_checkpoint(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_text("hello")
    assert main(["calibrate", str(bad), "--in-place"]) == 2
    assert "checkpoint" in _err_line(capsys)


def test_calibrate_cli_writes_a_new_checkpoint_or_in_place_only_when_asked(ckpt, tmp_path, capsys):
    before = ckpt.read_bytes()
    assert main(["calibrate", str(ckpt), "--thresholds", "0.3"]) == 2
    line = _err_line(capsys)
    assert "--out NEW.pt" in line and "--in-place" in line
    new = tmp_path / "sub" / "cal.pt"
    assert main(["calibrate", str(ckpt), "--thresholds", "0.3", "--out", str(new)]) == 0
    assert f"stored in {new}" in capsys.readouterr().out
    assert ckpt.read_bytes() == before  # the given checkpoint stays as it was
    assert load_checkpoint(new).config["calibration"]["thresholds"] == [0.3]
    assert [p.name for p in new.parent.iterdir()] == ["cal.pt"]  # no temporary file left
    assert main(["calibrate", str(ckpt), "--thresholds", "0.2", "--out", str(new)]) == 2
    assert "--force" in _err_line(capsys)
    assert main(["calibrate", str(ckpt), "--thresholds", "0.2", "--out", str(new), "--force"]) == 0
    assert load_checkpoint(new).config["calibration"]["thresholds"] == [0.2]
    assert main(["calibrate", str(ckpt), "--thresholds", "0.2", "--out", str(ckpt)]) == 2
    assert "input" in _err_line(capsys) and ckpt.read_bytes() == before
    # a failed calibration leaves no half-written --out and no temporary file
    assert main(["calibrate", str(ckpt), "--thresholds", "0.1,0.2", "--out", str(tmp_path / "x.pt")]) == 2
    assert "thresholds" in _err_line(capsys)
    assert not (tmp_path / "x.pt").exists() and not list(tmp_path.glob(".x.pt.*"))


def test_calibrate_cost_is_called_macs(ckpt, capsys):
    assert main(["calibrate", str(ckpt), "--in-place", "--thresholds", "0.3", "--cost", "macs"]) == 0
    assert "MACs" in capsys.readouterr().out
    assert "'macs'" in " ".join(build_help("calibrate").split())


def build_help(command: str) -> str:
    from edgebranchy.cli import build_parser

    p = build_parser()
    import argparse

    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command].format_help()


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
    after_bench = text.split("[4/5]", 1)[1].split("[5/5]", 1)[0].splitlines()
    # the verdict of the bench; one epoch leaves the separately trained baseline far behind the exits, so a
    # warning that the baseline looks under-trained may lead it
    assert any(ln.startswith("branchy is ") or "; measured anyway: branchy is " in ln for ln in after_bench), after_bench
    res = json.loads((out / "results.json").read_text())["runs"][0]
    assert res["variants"]["branchy"]["energy"]["kind"] in ("estimated", "measured")
    assert (out / "report" / "report.html").is_file() and (out / "b-lenet.pt").is_file()
    Artifact.load(out / "artifact")
    # a second run is refused without --force, and with it replaces the earlier quickstart's outputs only
    argv = ["quickstart", "--dataset", "synthetic", "--epochs", "1", "--trials", "1", "--samples", "20",
            "--out", str(out)]
    assert main(argv) == 2
    assert "--force" in _err_line(capsys)
    (out / "notes.txt").write_text("mine")
    (out / "b-lenet.pt.resume").write_bytes(b"stale")
    first = json.loads((out / "results.json").read_text())["created"]
    assert main(argv + ["--force"]) == 0
    assert "replacing the earlier quickstart" in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "mine" and not (out / "b-lenet.pt.resume").exists()
    res = json.loads((out / "results.json").read_text())
    assert res["created"] != first and res["runs"][0]["config"]["samples"] == 20
    # a folder that is not a quickstart's is never replaced wholesale
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text("{}")
    assert main(["quickstart", "--out", str(other), "--force"]) == 2
    assert "results.json" in _err_line(capsys) and (other / "results.json").read_text() == "{}"


def test_log_every_prints_running_loss(tmp_path, capsys):
    assert main(["train", "--dataset", "synthetic", "--samples", "300", "--epochs", "1", "--baseline-epochs", "0",
                 "--batch-size", "32", "--log-every", "3", "--out", str(tmp_path / "m.pt")]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if "running mean" in l]
    assert len(lines) == -(-270 // 32) // 3 and lines[0].startswith("joint epoch 1 step 3/")


def test_predict_chooses_the_stream_mode_on_its_own_batches_or_runs_the_one_asked(tiny_artifact, capsys):
    base = ["predict", str(tiny_artifact), "--dataset", "synthetic", "--samples", "200", "--batch-size", "8"]
    assert main(base + ["--stream-mode", "sequential"]) == 0
    seq = capsys.readouterr().out
    assert "stream: " not in seq
    assert main(base) == 0  # auto: 25 batches, turns of 2 batches, 2 rounds of 3 modes
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("stream: "))
    assert "measured on the first 12 batches, 2 per turn: sequential" in line
    # every sample answered once: the same exit histogram and accuracy as the sequential run
    pick = lambda text: [ln for ln in text.splitlines() if re.match(r"(exit \d|branchy  accuracy)", ln)]
    strip = lambda lines: [re.sub(r"\s+[\d.]+ s$", "", ln) for ln in lines]
    assert strip(pick(out)) == strip(pick(seq)) and sum(int(m) for m in re.findall(r"exit \d+:\s+(\d+) samples", out)) == 200
    assert main(base[:-2] + ["--batch-size", "32"]) == 0  # 7 batches: too few to time
    assert "stream: sequential (7 batches: too few to time the modes on)" in capsys.readouterr().out
    assert main(base + ["--pipelined", "--stream-mode", "concurrent"]) == 2
    assert "disagree" in _err_line(capsys)
