"""`edgebranchy calibrate ARTIFACT`: thresholds recomputed from the deployed graphs' outputs, without torch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgebranchy.cli import main
from edgebranchy.artifact.manifest import Artifact

from eb_testutil import NO_TORCH, ROOT



@pytest.fixture
def art(tiny_artifact, tmp_path):
    out = tmp_path / "art"
    shutil.copytree(tiny_artifact, out)
    return out


def test_calibrate_artifact_without_torch_records_both(art):
    before = json.loads((art / "manifest.json").read_text())
    code = NO_TORCH + textwrap.dedent(f"""
        from edgebranchy.cli import main
        rc = main(["calibrate", {str(art)!r}, "--in-place", "--max-accuracy-drop", "2", "--batch-size", "64"])
        assert rc == 0, rc
        assert "torch" not in sys.modules
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "recomputed on this backend" in r.stdout and "recorded and applied" in r.stdout
    m = json.loads((art / "manifest.json").read_text())
    assert m["calibration"] == before["calibration"]          # the original stays
    assert m["files"] == before["files"]                      # sha256 bookkeeping untouched
    dev = m["device_calibration"]
    assert dev["applied"] == "onnxruntime/fp32"
    assert dev["original_thresholds"] == [e["threshold"] for e in before["exits"][:-1]]
    rec = dev["records"]["onnxruntime/fp32"]
    assert rec["method"] == "max-accuracy-drop" and rec["target"] == 2.0
    assert [e["threshold"] for e in m["exits"][:-1]] == rec["thresholds"]
    assert rec["segment_costs"] == [s["macs"] for s in m["segments"]]
    assert "deployed graphs' entropy outputs" in rec["entropy_source"]
    assert rec["validation"]["accuracy"] >= rec["final_exit_accuracy"]["validation"] - 0.02 - 1e-9
    Artifact.load(art, verify=True)


def test_device_thresholds_are_exact_for_the_runtime(art):
    """The runner with the recorded thresholds sends exactly the recorded fractions out on validation."""
    from edgebranchy.data.splits import load_recorded
    from edgebranchy.runtime.runner import EarlyExitRunner

    assert main(["calibrate", str(art), "--in-place", "--budget", "0.6", "--precision", "fp16"]) == 0
    m = json.loads((art / "manifest.json").read_text())
    rec = m["device_calibration"]["records"]["onnxruntime/fp16"]
    data = load_recorded(m["source"]["dataset"])
    with EarlyExitRunner(art, options={"precision": "fp16"}) as r:
        assert r.thresholds == rec["thresholds"]
        x = r.artifact.preprocess(data.val.x)
        exits = np.concatenate([r.predict(x[i:i + 32]).exits for i in range(0, len(x), 32)])
    got = (np.bincount(exits, minlength=2) / len(exits)).tolist()
    assert got == pytest.approx(rec["validation"]["exit_fractions"], abs=1e-12)
    assert rec["validation"]["relative_cost"] <= 0.6 + 1e-9


def test_no_apply_and_two_backends_keep_every_record(art, capsys):
    before = Artifact.load(art).thresholds
    assert main(["calibrate", str(art), "--in-place", "--max-accuracy-drop", "0", "--no-apply"]) == 0
    assert "not applied" in capsys.readouterr().out
    a = Artifact.load(art)
    assert a.thresholds == before and a.manifest["device_calibration"]["applied"] is None
    assert main(["calibrate", str(art), "--in-place", "--thresholds", "0.3", "--precision", "fp16"]) == 0
    a = Artifact.load(art)
    recs = a.manifest["device_calibration"]["records"]
    assert set(recs) == {"onnxruntime/fp32", "onnxruntime/fp16"} and recs["onnxruntime/fp16"]["method"] == "manual"
    assert a.thresholds == [0.3] and a.manifest["device_calibration"]["original_thresholds"] == before


@pytest.mark.parametrize("argv,phrase", [
    (["--temperature"], "fixed in an exported artifact"),
    (["--budget", "0.001"], "no thresholds meet the budget"),
    (["--backend", "nope"], "unknown backend"),
])
def test_artifact_calibration_user_errors(art, capsys, argv, phrase):
    before = (art / "manifest.json").read_text()
    assert main(["calibrate", str(art), "--in-place", *argv]) == 2
    assert phrase in capsys.readouterr().err
    assert (art / "manifest.json").read_text() == before


def test_out_writes_a_calibrated_copy_and_leaves_the_artifact(art, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in art.rglob("*") if p.is_file()}
    new = tmp_path / "calibrated"
    assert main(["calibrate", str(art), "--out", str(new), "--max-accuracy-drop", "2"]) == 0
    got = capsys.readouterr()
    assert f"recorded and applied in {new}/manifest.json" in got.out and got.err == ""
    assert {p.name: p.read_bytes() for p in art.rglob("*") if p.is_file()} == before   # untouched
    m = Artifact.load(new, verify=True).manifest
    assert m["device_calibration"]["applied"] == "onnxruntime/fp32" and "device_calibration" not in json.loads(
        before["manifest.json"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".calibrated.")]   # no temporary left
    assert main(["calibrate", str(art), "--out", str(new), "--thresholds", "0.2"]) == 2   # there already
    assert "--force" in capsys.readouterr().err
    assert main(["calibrate", str(art), "--out", str(new), "--thresholds", "0.2", "--force"]) == 0
    assert Artifact.load(new).thresholds == [0.2]


def test_the_old_spelling_still_calibrates_in_place_and_says_what_to_use(art, capsys):
    assert main(["calibrate", str(art), "--thresholds", "0.25"]) == 0
    assert Artifact.load(art).thresholds == [0.25]
    assert capsys.readouterr().err.splitlines() == [
        "edgebranchy calibrate: note: an artifact without --in-place is deprecated; use --in-place (or --out "
        "NEW_ARTIFACT for a calibrated copy)"]


def test_library_messages_get_the_flags_of_the_command(art, capsys):
    """The library names its settings (`budget`, `dataset`); the CLI says the flag the user gave."""
    from edgebranchy.calibration import calibrate_artifact
    from edgebranchy.errors import EdgeBranchyError

    with pytest.raises(EdgeBranchyError, match="drop `dataset` digits"):
        calibrate_artifact(art, dataset="digits", log=lambda s: None)
    assert main(["calibrate", str(art), "--in-place", "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert "(drop --dataset digits)" in err and "`" not in err
