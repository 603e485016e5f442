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
