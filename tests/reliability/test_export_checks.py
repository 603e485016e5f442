"""Export's numerical check: non-finite weights and outputs fail it, and it records what it checked (item 5)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError

from rel_util import cli, one_error_line


def _nan_checkpoint(src, dst):
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src)
    state = {k: v.clone() for k, v in ck.branchy_state.items()}
    name = next(k for k, v in state.items() if torch.is_floating_point(v) and v.dim() > 1)
    state[name].fill_(float("nan"))
    save_checkpoint(dst, ck.config, state, ck.baseline_state)
    return name


def test_nan_weights_are_refused(tiny_calibrated, tmp_path):
    p = tmp_path / "nan.pt"
    name = _nan_checkpoint(tiny_calibrated, p)
    rc, _, err = cli("export", p, "--out", tmp_path / "art", "--no-simplify", "--check-samples", "4")
    line = one_error_line(err, "export")
    assert rc == 2 and name in line and "NaN" in line
    assert not (tmp_path / "art").exists()


def test_non_finite_outputs_fail_the_check():
    from edgebranchy.export.onnx import _max_diff

    a = np.array([[1.0, np.nan]], np.float32)
    with pytest.raises(EdgeBranchyError, match="non-finite"):
        _max_diff([a], [a], "segment 0 (fp32)")
    with pytest.raises(EdgeBranchyError, match="non-finite"):
        _max_diff([np.array([np.inf])], [np.array([1.0])], "baseline (fp32)")
    assert _max_diff([np.array([1.0])], [np.array([1.0])], "x") == 0.0


def test_check_samples_recorded(tiny_calibrated, tmp_path):
    from edgebranchy.artifact.manifest import Artifact

    for n in (3, 0):
        out = tmp_path / f"art{n}"
        rc, stdout, err = cli("export", tiny_calibrated, "--out", out, "--no-simplify", "--check-samples", n)
        assert rc == 0, err
        m = Artifact.load(out).manifest
        for entry in m["segments"] + [m["baseline"]]:
            assert entry["checked_samples"] == n
            if n:
                assert isinstance(entry["max_abs_diff"], float)
            else:
                assert entry["max_abs_diff"] is None  # skipped, not "0.0"
        if n == 0:
            assert "skipped" in stdout and "not checked" in stdout


def test_stored_negative_threshold_never_reaches_an_artifact(tiny_calibrated, tmp_path):
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint

    ck = load_checkpoint(tiny_calibrated)
    ck.config["calibration"]["thresholds"] = [-1.0]
    p = tmp_path / "neg.pt"
    torch.save({"format": "edgebranchy.checkpoint", "version": 1, "config": json.dumps(ck.config),
                "branchy": ck.branchy_state, "baseline": ck.baseline_state}, p)
    rc, _, err = cli("export", p, "--out", tmp_path / "art", "--keep-all-exits", "--check-samples", "2")
    assert rc == 2 and "thresholds[0]" in one_error_line(err, "export")
    assert not (tmp_path / "art").exists()


def test_export_api_refuses_bad_check_samples(tiny_calibrated, tmp_path):
    from edgebranchy.export.onnx import export_checkpoint

    for bad in (-5, True, 1.5, "3"):
        with pytest.raises(EdgeBranchyError, match="`check_samples` must be a whole number >= 0"):
            export_checkpoint(tiny_calibrated, tmp_path / "a", check_samples=bad, log=lambda s: None)
    assert not (tmp_path / "a").exists()
