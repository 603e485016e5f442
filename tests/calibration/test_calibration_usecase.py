"""One calibration use case: both sources (a checkpoint's logits, an artifact run on a backend) go through the same
target, search and record, so both are checked the same way and say the same things."""
from __future__ import annotations

import dataclasses
import math
import shutil

import pytest

from edgebranchy.artifact.calibration import CalibrationRecord
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.calibration import calibrate_artifact, calibrate_checkpoint
from edgebranchy.errors import EdgeBranchyError


@pytest.fixture
def art(tiny_artifact, tmp_path):
    out = tmp_path / "art"
    shutil.copytree(tiny_artifact, out)
    return out


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path):
    out = tmp_path / "m.pt"
    shutil.copyfile(tiny_checkpoint, out)
    return out


def _quiet(_line: str) -> None:
    pass


@pytest.mark.parametrize("bad", [[-0.5], [math.inf], [True], [0.1, 0.2]])
def test_device_path_validates_thresholds_before_touching_the_manifest(art, bad):
    """The device path built its record as a raw dict: a negative or infinite threshold was written into the
    manifest's exits, which the loader then refused (a broken artifact left on disk), and a boolean was stored
    as is. Now the record is checked when it is made, before anything is written."""
    before = (art / "manifest.json").read_bytes()
    with pytest.raises(EdgeBranchyError, match="thresholds"):
        calibrate_artifact(art, thresholds=bad, log=_quiet)
    assert (art / "manifest.json").read_bytes() == before
    Artifact.load(art, verify=True)


def test_both_paths_say_the_same_about_targets(art, ckpt):
    for kw, phrase in (({"budget": 0.5, "max_accuracy_drop": 1.0}, "give one of `max_accuracy_drop`, `budget` and "
                                                                    "`thresholds`"),
                       ({"budget": 1.5}, r"`budget` must be a fraction in \(0, 1\], got 1.5"),
                       ({"max_accuracy_drop": -1.0}, "`max_accuracy_drop` must be a number of percentage points"),
                       ({"reference": "nope"}, "`reference` must be final-exit or baseline"),
                       ({"thresholds": [0.1, 0.2]}, r"`thresholds`: 2 exits need 1 threshold .* got 2")):
        with pytest.raises(EdgeBranchyError, match=phrase):
            calibrate_checkpoint(ckpt, log=_quiet, **kw)
        with pytest.raises(EdgeBranchyError, match=phrase):
            calibrate_artifact(art, log=_quiet, **kw)


def test_both_records_are_calibration_records_with_the_same_default(art, ckpt):
    fields = {f.name for f in dataclasses.fields(CalibrationRecord)}
    ck_rec = calibrate_checkpoint(ckpt, log=_quiet, warn=_quiet)
    dev_rec = calibrate_artifact(art, log=_quiet, warn=_quiet)
    assert set(ck_rec) == fields and fields <= set(dev_rec)
    for rec in (ck_rec, dev_rec):
        assert (rec["method"], rec["target"], rec["reference"]) == ("max-accuracy-drop", 0.5, "final-exit")
        assert CalibrationRecord(**{k: rec[k] for k in fields}).to_dict() == {k: rec[k] for k in fields}
    assert dev_rec["normalized"] is False and dev_rec["head_costs"] is None     # measured per deployed segment
    assert ck_rec["head_costs"] is not None and ck_rec["baseline_accuracy"]["validation"] is not None
    assert dev_rec["baseline_accuracy"] is None                                  # the baseline ran only if needed
    with_base = calibrate_artifact(art, reference="baseline", max_accuracy_drop=100.0, log=_quiet, warn=_quiet)
    assert 0.0 <= with_base["baseline_accuracy"]["validation"] <= 1.0
    assert with_base["reference_accuracy"] == with_base["baseline_accuracy"]["validation"]


@pytest.mark.parametrize("change,phrase", [
    ({"thresholds": [-1.0]}, r"calibration record thresholds\[0\] must be a finite number >= 0"),
    ({"thresholds": [0.1, 0.2]}, "2 exits need 1 threshold"),
    ({"method": "guess"}, "method must be one of max-accuracy-drop, budget, manual"),
    ({"reference": "other"}, "reference must be one of final-exit, baseline"),
])
def test_a_record_is_checked_when_made(change, phrase):
    ok = dict(method="manual", target=None, reference="final-exit", cost_source="flops", segment_costs=[1.0, 2.0],
              baseline_cost=2.0, thresholds=[0.3], temperatures=None, validation={}, test=None, frontier=None)
    CalibrationRecord(**ok)
    with pytest.raises(EdgeBranchyError, match=phrase):
        CalibrationRecord(**{**ok, **change})
