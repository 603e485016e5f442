"""Set-ups that make a headline meaningless (issue 22): a model near chance, a side exit beating the final exit,
a baseline that looks untrained. The verdict of bench, predict and the report leads with the warning; calibrate
says what a beaten final exit means for its accuracy target."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import build_results

from edgebranchy.artifact.plausibility import (accuracy_context, calibration_warning, chance_level, near_chance,
                                               setup_problems, side_beats_final)
from edgebranchy.report.verdict import predict_lines, verdict_lines

from eb_testutil import run_cli


def _run(**kw) -> dict:
    doc = build_results(**kw)
    del doc["schema"], doc["schema_version"]
    return doc


def test_chance_and_near_chance() -> None:
    assert chance_level(4) == 0.25 and chance_level(10, [0, 0, 0, 1]) == 0.75   # the majority class if higher
    assert near_chance(0.33, 0.25) and near_chance(0.10, 0.10) and not near_chance(0.88, 0.10)
    assert not near_chance(0.40, 0.25)   # 20% of the way from chance to perfect
    assert side_beats_final([0.889, 0.33]) == (0, 0.889, 0.33)
    assert side_beats_final([0.90, 0.89]) is None and side_beats_final([0.89, 0.97]) is None   # within 2 points
    assert side_beats_final([None, 0.9]) is None and side_beats_final([0.5]) is None


def test_the_issue_numbers_get_every_warning_first() -> None:
    """The issue's untrained backbone: final exit 33% on 4 classes, exit 0 at 88.9%, branchy +56.7 points."""
    run = _run()
    run["variants"]["baseline"]["accuracy"], run["variants"]["branchy"]["accuracy"] = 0.33, 0.897
    run["accuracy_pairs"] = {"baseline_only": 20, "branchy_only": 5690, "n": 10000}
    run["accuracy_context"] = {"classes": 4, "chance": 0.25, "exit_accuracy": [0.889, 0.33],
                               "exit_accuracy_split": "validation"}
    lines = verdict_lines(run)
    assert lines[0].startswith("warning: the baseline is near chance (33.0% right on 4 classes, chance 25.0%)")
    assert "; measured anyway: branchy is 1.97x faster at p50" in lines[0]
    assert lines[1].startswith("warning: exit 0 is more accurate than the final exit (88.9% vs 33.0% on the "
                               "validation split)")
    assert "allowed accuracy drop from the final exit (33.0%)" in lines[1]
    assert lines[2].startswith("warning: branchy is +56.7 points more accurate than its baseline")
    # a healthy run: no such warning, the verdict starts with the speedup
    ok = _run()
    ok["accuracy_context"] = {"classes": 10, "chance": 0.1, "exit_accuracy": [0.85, 0.90],
                              "exit_accuracy_split": "validation"}
    assert verdict_lines(ok)[0].startswith("branchy is 1.97x faster")
    assert setup_problems(None, 0.9) == []


def test_predict_leads_with_the_warning() -> None:
    y = np.repeat(np.arange(4), 25)
    base_right = np.zeros(100, dtype=bool)
    base_right[:30] = True
    branchy_right = np.ones(100, dtype=bool)
    ctx = {"classes": 4, "chance": 0.25, "exit_accuracy": [0.9, 0.3], "exit_accuracy_split": "validation"}
    lines = predict_lines(base_right, branchy_right, [1.0, 0.0], 1.0, 0.5, calibrated=True, context=ctx)
    assert lines[0].startswith("warning: the baseline is near chance (30.0% right on 4 classes")
    assert "measured anyway: branchy accuracy +70.00 points" in lines[0]
    assert accuracy_context({"classes": list("abcd"), "exits": [{"val_accuracy": 0.9}, {"val_accuracy": None}]},
                            y) == {"classes": 4, "chance": 0.25, "exit_accuracy": [0.9, None],
                                   "exit_accuracy_split": "validation"}


def test_calibration_warning_names_the_reference() -> None:
    y = np.arange(100) % 4
    right = np.eye(4)[y] * 5.0
    wrong = np.eye(4)[(y + 1) % 4] * 5.0
    side = np.where((np.arange(100) < 90)[:, None], right, wrong)    # 90% right
    final = np.where((np.arange(100) < 30)[:, None], right, wrong)   # 30% right
    w = calibration_warning([side, final], y)
    assert w.startswith("warning: exit 0 is more accurate than the final exit (90.0% vs 30.0% on the validation")
    assert "from the final exit (30.0%)" in w
    assert "from the baseline (31.0%)" in calibration_warning([side, final], y, "baseline", 0.31)
    assert calibration_warning([final, side], y) is None


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> dict:
    """B-LeNet on digits whose backbone was never trained (frozen at its random weights): only the side head
    learnt. Calibrated with the CLI (its stderr kept), exported, benched and predicted with the CLI."""
    from edgebranchy.train.trainer import TrainConfig, Trainer

    d = tmp_path_factory.mktemp("untrained")
    ck = d / "untrained.pt"
    Trainer(TrainConfig(model="b-lenet", dataset="digits", epochs=4, batch_size=64, seed=0, freeze_backbone=True),
            ck, progress=False).run()
    cal = run_cli("calibrate", ck, "--in-place", "--max-accuracy-drop", "1")
    assert cal.returncode == 0, cal.stderr
    art = d / "art"
    exp = run_cli("export", ck, "--out", art, "--no-single-graph", "--check-samples", "0")
    assert exp.returncode == 0, exp.stderr
    out = d / "r.json"
    bench = run_cli("bench", art, "--dataset", "digits", "--profile", "x86-cpu", "--power", "estimate",
                    "--samples", "100", "--trials", "2", "--min-window", "0.05", "--idle", "0.05", "--warmup", "2",
                    "--warmup-max", "0", "--out", out)
    assert bench.returncode == 0, bench.stderr
    predict = run_cli("predict", art, "--dataset", "digits", "--samples", "200")
    assert predict.returncode == 0, predict.stderr
    return {"calibrate": cal, "bench": bench, "predict": predict, "results": out, "dir": d}


def test_an_untrained_backbone_gets_a_warning_first(untrained: dict, tmp_path: Path) -> None:
    assert "warning: exit 0 is more accurate than the final exit" in untrained["calibrate"].stderr
    assert "the allowed accuracy drop from the final exit" in untrained["calibrate"].stderr
    first = untrained["bench"].stdout.splitlines()[0]
    assert first.startswith("warning: the baseline is near chance (") and " on 10 classes" in first
    assert "measured anyway: branchy is " in first
    assert "warning: exit 0 is more accurate than the final exit" in untrained["bench"].stderr
    doc = json.loads(untrained["results"].read_text())
    ctx = doc["runs"][0]["accuracy_context"]
    assert ctx["classes"] == 10 and 0.1 <= ctx["chance"] < 0.2 and ctx["exit_accuracy"][0] > ctx["exit_accuracy"][1]
    assert untrained["predict"].stdout.startswith("warning: the baseline is near chance (")
    rep = run_cli("report", untrained["results"], "--out", tmp_path / "rep")
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    verdict = md.split("## Verdict", 1)[1].split("## Summary", 1)[0].strip()
    assert verdict.startswith("**R1: ") and "**: warning: the baseline is near chance (" in verdict.splitlines()[0]
