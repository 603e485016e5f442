"""The contracts have one writer each: the manifest builder, the calibration record, sha256 and type checks."""
from __future__ import annotations

import dataclasses

import pytest

from edgebranchy.artifact.calibration import CalibrationRecord
from edgebranchy.artifact.manifest import Artifact, build_manifest
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_finite_at_least, is_int, is_int_at_least, is_number
from edgebranchy.util.files import check_sha256, sha256_file


def test_checks_refuse_bools_and_non_finite():
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(2.5) and is_number(2) and not is_number(False) and not is_number("1")
    assert is_int_at_least(3, 1) and not is_int_at_least(0, 1) and not is_int_at_least(6, 1, 5)
    assert is_int_at_least(5, 1, 5) and not is_int_at_least(True, 0)
    assert is_finite_at_least(0.0) and not is_finite_at_least(float("inf")) and not is_finite_at_least(-1)
    assert not is_finite_at_least(float("nan")) and not is_finite_at_least(True)


def test_check_sha256(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert check_sha256(f, sha256_file(f), "x") == sha256_file(f)
    with pytest.raises(EdgeBranchyError, match="^damaged: sha256 ba7816bf8f01cfea"):
        check_sha256(f, "0" * 64, "damaged")


def test_calibration_record_holds_the_whole_stored_record(tiny_calibrated):
    from edgebranchy.models.checkpoint import load_checkpoint

    stored = load_checkpoint(tiny_calibrated).config["calibration"]
    assert set(stored) == {f.name for f in dataclasses.fields(CalibrationRecord)}
    assert CalibrationRecord(**stored).to_dict() == stored


CFG = {"model": {"name": "b-lenet", "args": {}}, "classes": ["a", "b"],
       "input": {"shape": [1, 4, 4], "dtype": "float32", "layout": "NCHW", "mean": [0.5], "std": [0.25], "scale": 255},
       "validation": {"exit_accuracy": [0.5, 0.7, 0.9]},
       "calibration": {"thresholds": [0.0, 0.3], "normalized": False}}


def test_build_manifest_fuses_and_validates(tmp_path):
    m = build_manifest(CFG, [1, 2], normalized=False, temperatures=[1.0] * 3, source={})
    assert [e["model_exit"] for e in m["exits"]] == [1, 2] and m["pruned_exits"] == [0]
    assert [e["threshold"] for e in m["exits"]] == [0.3, None]
    assert [e["val_accuracy"] for e in m["exits"]] == [0.7, 0.9]
    art = Artifact.from_manifest(tmp_path, m, graphs=False)
    assert art.thresholds == [0.3] and art.input_shape == (1, 4, 4)
    with pytest.raises(EdgeBranchyError, match="baseline has no 'file'"):
        Artifact.from_manifest(tmp_path, m)   # graphs expected: a manifest without files is refused
    bad = build_manifest({**CFG, "input": {"shape": [1, 4, 4]}}, [1, 2], normalized=False, temperatures=[1.0] * 3,
                         source={})
    with pytest.raises(EdgeBranchyError, match="'input' needs shape, scale, mean and std"):
        Artifact.from_manifest(tmp_path, bad, graphs=False)


def test_checkpoint_manifest_matches_the_exported_one(tiny_calibrated, tiny_artifact):
    from edgebranchy.runtime.backends.torch import checkpoint_artifact

    mem, disk = checkpoint_artifact(tiny_calibrated).manifest, Artifact.load(tiny_artifact).manifest
    for key in ("schema", "schema_version", "model", "input", "classes", "entropy", "calibration", "pruned_exits"):
        assert mem[key] == disk[key], key
    assert [e["threshold"] for e in mem["exits"]] == [e["threshold"] for e in disk["exits"]]
