"""Talkative where a person waits, silent where it is noise: notes first, mistakes refused early, no nan%."""
from __future__ import annotations

import re

from eb_testutil import run_cli

from edgebranchy.cli import main
from edgebranchy.util import talk


def test_a_mistyped_model_is_refused_before_any_data_is_read(tmp_path):
    r = run_cli("train", "--model", "b-lenett", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "no-data",
                "--out", tmp_path / "m.pt")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2
    assert lines[0].startswith("train: checking the options") and talk.is_note(lines[0])
    assert "unknown model 'b-lenett'" in lines[-1] and "b-lenet" in lines[-1] and "no-data" not in r.stderr
    r = run_cli("train", "--dataset", "fashion-mnst", "--out", tmp_path / "m.pt")
    assert r.returncode == 2 and "unknown dataset 'fashion-mnst'" in r.stderr


def test_notes_only_from_the_cli(capsys):
    talk.say("library code")
    assert capsys.readouterr().err == ""  # a library user sees nothing
    talk.enable()
    try:
        talk.say("loading x")
        assert capsys.readouterr().err == "loading x ...\n"
    finally:
        talk.enable(False)
    assert main(["models", "b-lenet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("models: loading torch") and not talk.enabled()  # main() restores the state


def test_predict_prints_a_dash_for_an_exit_no_sample_took(tiny_artifact, capsys):
    # a threshold no entropy reaches: every sample goes on to the last exit, exit 0 takes none
    assert main(["predict", str(tiny_artifact), "--dataset", "synthetic", "--samples", "40",
                 "--thresholds", "0"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out
    line = next(ln for ln in out.splitlines() if ln.startswith("exit 0:"))
    assert re.search(r"exit 0:\s+0 samples \(\s*0\.0%\), accuracy\s+-$", line), line
    assert re.search(r"exit 1:\s+40 samples .*accuracy\s+\d+\.\d\d%$", out, re.M)
    # the verdict comes first, and says that nothing left early
    first, second = out.splitlines()[:2]
    assert re.match(r"branchy accuracy [+-]\d+\.\d+ points \[.*\] against the baseline on 40 test samples; "
                    r"0\.0% left early", first), first
    assert second.startswith("warning: no sample leaves early")
    assert re.search(r"this pass took \d+\.\d\dx (less|MORE) wall time", first), first
