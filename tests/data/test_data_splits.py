"""The split contract (data/splits.py): train records what determines its splits, and every later command
reloads exactly that split or refuses in one line saying what differs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgebranchy.cli import main
from edgebranchy.data import load_dataset
from edgebranchy.data.datasets import split_train_val
from edgebranchy.errors import EdgeBranchyError

SAMPLES = 300  # digits: 1437 training samples, 360 test; --samples 300 keeps 270 train / 30 validation / 300 test


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """B-LeNet trained for a few steps on the first 300 digits samples (`train --samples 300`)."""
    out = tmp_path_factory.mktemp("split") / "lim.pt"
    assert main(["train", "--dataset", "digits", "--samples", str(SAMPLES), "--epochs", "1", "--max-steps", "3",
                 "--batch-size", "32", "--out", str(out), "--quiet"]) == 0
    return out


def _expected_val(norm):
    """The validation images of `train --samples 300` computed here from first principles: the first 300
    of digits' training part, split by the seeded permutation."""
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.uint8)[:, None]
    train, _ = split_train_val(len(x), 360, 12345)  # digits' fixed test split
    _, va = split_train_val(SAMPLES, SAMPLES // 10, 0)
    return norm.apply(x[train][:SAMPLES][va])


def test_calibrate_sees_the_validation_split_train_held_out(limited, tmp_path, monkeypatch):
    """The issue's defect: calibrate reloaded the data set without the sample limit and drew another
    validation split, part of it training samples. Now it sees the very samples train held out, and
    reports the main exit's validation accuracy that train recorded."""
    from edgebranchy.data.datasets import Normalization
    from edgebranchy.models.checkpoint import load_checkpoint
    from edgebranchy.calibration import checkpoint_source as collect

    seen = []
    real = collect.collect_logits

    def spy(net, x, *a, **kw):
        seen.append(np.asarray(x))
        return real(net, x, *a, **kw)

    monkeypatch.setattr(collect, "collect_logits", spy)
    cfg = load_checkpoint(limited).config
    out = tmp_path / "cal.pt"
    assert main(["calibrate", str(limited), "--out", str(out), "--max-accuracy-drop", "100"]) == 0
    want = _expected_val(Normalization.from_dict(cfg["input"]))
    assert seen[0].shape == want.shape and np.array_equal(seen[0], want)
    rec = load_checkpoint(out).config["calibration"]
    assert rec["final_exit_accuracy"]["validation"] == cfg["validation"]["exit_accuracy"][-1]
    assert rec["validation"]["n"] == SAMPLES // 10


def test_the_checkpoint_records_what_determines_the_split(limited):
    from edgebranchy.data.splits import index_digest
    from edgebranchy.models.checkpoint import load_checkpoint

    d = load_checkpoint(limited).config["dataset"]
    s = d["split"]
    assert (d["train"], d["val"], d["test"]) == (270, 30, 300)
    assert (s["version"], s["limit"], s["val_size"], s["seed"]) == (1, SAMPLES, 30, 0)
    assert s["val_index_sha256"] == index_digest(split_train_val(SAMPLES, 30, 0)[1])
    assert len(s["sources_sha256"]) == 64


def test_predict_export_and_the_torch_runner_use_the_recorded_split(limited, tmp_path, capsys):
    from edgebranchy.runtime.runner import EarlyExitRunner

    art = tmp_path / "art"
    assert main(["export", str(limited), "--out", str(art), "--no-single-graph"]) == 0
    m = json.loads((art / "manifest.json").read_text())
    assert m["segments"][0]["checked_samples"] == 30  # the numeric check ran on the recorded validation split
    capsys.readouterr()
    assert main(["predict", str(art), "--dataset", "digits", "--thresholds", "0.5"]) == 0
    assert f"{SAMPLES} test samples of digits" in capsys.readouterr().out  # the recorded limit, not all 360
    with EarlyExitRunner.from_checkpoint(limited) as r:
        assert r.artifact.source["dataset"]["split"] == m["source"]["dataset"]["split"]
    # device calibration on another data set's split is refused: the artifact records its own
    with pytest.raises(EdgeBranchyError, match="was trained on digits"):
        from edgebranchy.calibration import calibrate_artifact

        calibrate_artifact(art, dataset="synthetic", log=lambda s: None)


def test_calibrate_refuses_data_that_is_not_the_recorded_split(limited):
    from edgebranchy.calibration import calibrate_checkpoint

    with pytest.raises(EdgeBranchyError, match=r"does not reproduce the split .*seed 1 here, 0 recorded"):
        calibrate_checkpoint(limited, data=load_dataset("digits", seed=1, limit=SAMPLES), log=lambda s: None)


def _mnist(tmp_path):
    import importlib.util

    from eb_testutil import ROOT

    spec = importlib.util.spec_from_file_location("data_idx_files", ROOT / "tests/data/data_idx_files.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    d = tmp_path / "mnist"
    mod.write_mnist_dir(d, n_train=60, n_test=20)
    return d


def test_changed_files_settings_or_split_are_refused_in_one_line(tmp_path, monkeypatch):
    from edgebranchy.data import datasets
    from edgebranchy.data.splits import load_recorded

    d = _mnist(tmp_path)
    rec = load_dataset("mnist", d, val_size=6, seed=2, limit=40).describe()
    again = load_recorded(rec)  # from the recorded source folder
    assert (len(again.train), len(again.val), len(again.test)) == (34, 6, 20)
    # another copy of the same files is the same data set
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    assert load_recorded(rec, copy).describe()["split"] == rec["split"]
    # a changed file
    f = copy / "t10k-images-idx3-ubyte"
    b = bytearray(f.read_bytes())
    b[-1] ^= 0xFF
    f.write_bytes(bytes(b))
    with pytest.raises(EdgeBranchyError, match=r"source files sha256 \w{12} here, \w{12} recorded") as e:
        load_recorded(rec, copy)
    assert "\n" not in str(e.value)
    # a split algorithm that draws other indices (e.g. another numpy permutation; the cache would hold the old)
    monkeypatch.setenv("EDGEBRANCHY_CACHE", "off")
    monkeypatch.setattr(datasets, "split_train_val",
                        lambda n, v, s: (np.arange(v, n), np.arange(v)))
    with pytest.raises(EdgeBranchyError, match="validation indices sha256"):
        load_recorded(rec, d)


def test_records_without_the_split_block(tmp_path):
    from edgebranchy.data.splits import load_recorded

    d = _mnist(tmp_path)
    old = load_dataset("mnist", d, val_size=6, seed=2).describe()
    del old["split"]
    warned = []
    b = load_recorded(old, log=warned.append)
    assert len(b.val) == 6 and "predates recorded splits" in warned[0]
    limited_old = load_dataset("mnist", d, val_size=6, seed=2, limit=40).describe()
    del limited_old["split"]
    with pytest.raises(EdgeBranchyError, match="train 54 here, 34 recorded.*retrain"):
        load_recorded(limited_old)


def test_an_image_folder_that_changed_is_refused(tmp_path):
    from eb_images import make_image_folder

    from edgebranchy.data.splits import load_recorded

    root = tmp_path / "imgs"
    make_image_folder(root, per_class=6, bad=False)
    rec = load_dataset("imagefolder", root, image={"size": 16}, limit=12).describe()
    assert load_recorded(rec).val.x.paths == load_dataset("imagefolder", root, image={"size": 16},
                                                          limit=12).val.x.paths
    extra = sorted((root / "cat").iterdir())[0]
    extra.with_name("zz-added" + extra.suffix).write_bytes(extra.read_bytes())
    with pytest.raises(EdgeBranchyError, match="source files sha256"):
        load_recorded(rec)
