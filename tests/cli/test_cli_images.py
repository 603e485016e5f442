"""End to end on a generated image folder with the user's own model (a ResNet-style network split inside a
residual block, so the skip tensor crosses the split, with a flatten before its classifier): train (joint
and frozen backbone from the user's weights), calibrate, export, predict --images and bench, each as a user
runs it (its own interpreter)."""
from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edgebranchy.artifact.results import load_runs_doc

from eb_images import make_image_folder
from eb_testutil import run_cli

pytest.importorskip("PIL", reason="Pillow is not installed")
TESTS = Path(__file__).resolve().parents[1]
MODEL = "eb_fx_models:resnet_branchy"
ENV = {"PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]),
       "EDGEBRANCHY_TRUST_MODEL_CODE": "eb_fx_models"}


@pytest.fixture(autouse=True)
def _trust(monkeypatch):
    """The in-process checks rebuild the model from its module:function factory, as the CLI runs did."""
    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "eb_fx_models")


def _ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from eb_fx_models import resnet_weights

    d = tmp_path_factory.mktemp("e2e")
    env = {**ENV, "EDGEBRANCHY_CACHE": str(d / "cache")}  # this module's data cache, not the user's
    folder = make_image_folder(d / "images", per_class=16)
    resnet_weights(str(d / "weights.pt"), num_classes=3)
    train = ["train", "--model", MODEL, "--dataset", "imagefolder", "--data-dir", d / "images", "--image-size", "32",
             "--epochs", "1", "--max-steps", "3", "--batch-size", "16", "--quiet"]
    # each training run its own data cache (the damaged files are named the first time a cache sees them)
    with ThreadPoolExecutor(2) as pool:
        joint = pool.submit(run_cli, *train, "--baseline-epochs", "1", "--out", d / "joint.pt",
                            env={**ENV, "EDGEBRANCHY_CACHE": str(d / "cache-joint")})
        frozen = pool.submit(run_cli, *train, "--freeze-backbone", "--init-weights", d / "weights.pt",
                             "--out", d / "frozen.pt", env={**ENV, "EDGEBRANCHY_CACHE": str(d / "cache")})
        runs = {"joint": _ok(joint.result()), "frozen": _ok(frozen.result())}
    # exit 0 sits inside a residual block: keep it (a threshold > 0) so its segment passes two tensors on
    runs["calibrate"] = _ok(run_cli("calibrate", d / "frozen.pt", "--in-place", "--thresholds", "0.6,0.6", env=env))
    runs["export"] = _ok(run_cli("export", d / "frozen.pt", "--out", d / "art", env=env))
    bad = d / "images" / "cat" / "broken.png"
    make_image_folder(d / "sample", per_class=3, bad=False, seed=5)  # evaluation images, not the training folder
    bench = ["--profile", "x86-cpu", "--power", "estimate", "--samples", "8", "--trials", "1", "--warmup", "1",
             "--min-window", "0", "--idle", "0"]
    with ThreadPoolExecutor(3) as pool:
        jobs = {
            "predict": pool.submit(run_cli, "predict", d / "art", "--images", d / "images" / "cat", d / "images" / "fox",
                                   "--out", d / "answers.csv", env=env),
            "strict": pool.submit(run_cli, "predict", d / "art", "--images", bad, "--strict-images", env=env),
            "bench": pool.submit(run_cli, "bench", d / "art", "--dataset", "imagefolder", "--data-dir", d / "images",
                                 "--profile", "x86-cpu", "--power", "estimate", "--samples", "8", "--trials", "1",
                                 "--warmup", "1", "--min-window", "0", "--idle", "0", "--batch-size", "4",
                                 "--out", d / "results.json", env=env),
            # no --dataset: the artifact's own (issue 24 item 2), the recorded split or another folder of images
            "predict_default": pool.submit(run_cli, "predict", d / "art", "--samples", "6", env=env),
            "bench_sample": pool.submit(run_cli, "bench", d / "art", "--data-dir", d / "sample", *bench,
                                        "--out", d / "sample.json", env=env),
        }
        runs.update({k: j.result() for k, j in jobs.items()})
    return d, folder, runs


def test_train_reports_each_bad_file_in_one_line(pipeline):
    d, folder, runs = pipeline
    err = runs["joint"].stderr
    for p in folder["bad"]:
        assert sum(str(p) in ln for ln in err.splitlines()) == 1
    assert "skipped 3 file(s) that are not usable images" in err and "Traceback" not in err


def test_frozen_backbone_keeps_the_users_model(pipeline):
    import torch

    from eb_fx_models import TinyResNet
    from edgebranchy.models.checkpoint import load_checkpoint

    d, _, _ = pipeline
    ck = load_checkpoint(d / "frozen.pt")
    cfg = ck.config
    assert cfg["train"]["freeze_backbone"] and [h["phase"] for h in cfg["train"]["history"]] == ["joint"]
    for split in ("validation", "test"):  # the baseline is the given model: exactly the main exit
        assert cfg[split]["baseline_accuracy"] == cfg[split]["exit_accuracy"][-1]
    want = torch.load(d / "weights.pt", weights_only=True)
    model = TinyResNet(3, 3)
    model.load_state_dict(want)
    net, base = ck.build()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(base(x), model.eval()(x)) and torch.equal(net(x)[-1], model(x))
    assert cfg["input"]["resize"] == 32 and cfg["input"]["crop"] == [32, 32]


def test_export_passes_the_skip_tensor_and_matches_pytorch(pipeline):
    import torch

    from edgebranchy.data import load_dataset
    from edgebranchy.data.imagefolder import reader_options
    from edgebranchy.models.checkpoint import load_checkpoint
    from edgebranchy.runtime.runner import EarlyExitRunner

    d, _, runs = pipeline
    m = json.loads((d / "art" / "manifest.json").read_text())
    segs = m["segments"]
    assert len(segs) == 3 and segs[0]["outputs"] == ["features.0", "features.1", "logits", "entropy"]
    assert segs[1]["inputs"] == ["x.0", "x.1"] and segs[1]["input_shapes"] == [[8, 32, 32], [8, 32, 32]]
    assert segs[2]["inputs"] == ["x"] and all(s["max_abs_diff"] < 1e-4 for s in segs)
    assert m["baseline"]["separately_trained"] is False
    data = load_dataset("imagefolder", d / "images", image=reader_options(m["input"]))
    with EarlyExitRunner(d / "art") as ort, EarlyExitRunner(d / "art", backend="torch") as ref:
        x = ort.artifact.preprocess(data.test.x[:])
        a, b = ort.predict(x, return_logits=True), ref.predict(x, return_logits=True)
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-4, atol=1e-4)
        assert (a.exits == b.exits).all() and (a.labels == b.labels).all()
        net, _ = load_checkpoint(d / "frozen.pt").build()
        with torch.no_grad():
            outs = [o.numpy() for o in net(torch.from_numpy(x))]
        for k in range(3):  # each sample answered by its exit's logits, as PyTorch computes them
            np.testing.assert_allclose(a.logits[a.exits == k], outs[k][a.exits == k], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ort.backend.run_baseline(x), outs[-1], rtol=1e-4, atol=1e-4)


def test_predict_images_writes_one_row_per_image(pipeline):
    d, folder, runs = pipeline
    r = _ok(runs["predict"])
    rows = list(csv.DictReader((d / "answers.csv").open()))
    assert len(rows) == 32 and {row["label"] for row in rows} <= {"cat", "dog", "fox"}
    assert {row["exit"] for row in rows} <= {"0", "1", "2"} and all(float(row["entropy"]) >= 0 for row in rows)
    assert sum("broken.png" in ln for ln in r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_predict_strict_refuses_a_corrupt_image_in_one_line(pipeline):
    _, _, runs = pipeline
    r = runs["strict"]
    assert r.returncode == 2 and "broken.png" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bench_on_the_image_folder(pipeline):
    d, _, runs = pipeline
    _ok(runs["bench"])
    res = load_runs_doc(d / "results.json")[0]
    assert res["variants"]["branchy"]["accuracy"] is not None
    assert len(res["variants"]["branchy"]["exit_fractions"]) == 3


def test_predict_and_bench_default_to_the_artifacts_data_set(pipeline):
    """Issue 24 item 2: without --dataset, predict runs the image folder the artifact was trained on (its recorded
    test split), and bench given another folder of class folders (a sample on a board) reads all of it as test
    data, prepared as the artifact records; before, both defaulted to fashion-mnist (28x28: refused)."""
    d, _, runs = pipeline
    r = _ok(runs["predict_default"])
    assert "test samples of imagefolder" in r.stdout and "exit 2:" in r.stdout
    r = _ok(runs["bench_sample"])
    assert "its 9 images are all test data" in r.stderr, r.stderr
    res = load_runs_doc(d / "sample.json")[0]
    assert res["environment"]["dataset"] == "imagefolder"
    assert res["variants"]["branchy"]["accuracy"] is not None


@pytest.mark.parametrize("argv,phrase", [
    (["train", "--dataset", "synthetic", "--image-size", "32", "--crop", "28"], "--image-size, --crop: for --dataset "
                                                                                "imagefolder only"),
    (["train", "--dataset", "imagefolder", "--data-dir", "{images}", "--image-size", "16", "--strict-images"],
     "broken.png: damaged or not an image"),
    (["train", "--model", MODEL, "--dataset", "imagefolder", "--data-dir", "{images}", "--image-size", "16",
      "--freeze-backbone", "--baseline-epochs", "1"], "no baseline phase"),
    (["train", "--model", MODEL, "--dataset", "imagefolder", "--data-dir", "{images}", "--image-size", "16",
      "--init-weights", "{tmp}/none.pt"], "--init-weights: {tmp}/none.pt not found"),
    (["train", "--dataset", "imagefolder", "--data-dir", "{tmp}/nowhere"], "image folder not found"),
    (["train", "--dataset", "imagefolder"], "needs --data-dir"),
    (["predict", "{tmp}/art", "--out", "{tmp}/a.csv"], "--out and --strict-images go with --images"),
    (["predict", "{tmp}/art", "--images", "{images}", "--out", "{tmp}/a.txt"], "give a .csv or .json file"),
    (["predict", "{tmp}/art", "--images", "{tmp}/none.png"], "no such file or directory"),
])
def test_user_errors_are_one_line(argv, phrase, tmp_path, capsys, monkeypatch):
    from edgebranchy.cli import main

    monkeypatch.syspath_prepend(str(TESTS))
    images = tmp_path / "images"
    make_image_folder(images, per_class=3)
    fill = {"images": str(images), "tmp": str(tmp_path)}
    argv = [a.format(**fill) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "x.pt"), "--max-steps", "1", "--epochs", "1", "--quiet"]
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("skip")]
    assert len(err) == 1 and phrase.format(**fill) in err[0], err
