"""`edgebranchy plan --dataset imagefolder` on a generated image folder: the image flags shared with train, the plan
file and its `next:` command (run as printed), the cache keyed by how the images were read, and the flags refused
without an image folder."""
from __future__ import annotations

import json
import shlex

import pytest

from eb_images import make_image_folder
from eb_testutil import ROOT, run_cli

pytest.importorskip("PIL", reason="Pillow is not installed")
MODEL = "eb_fx_models:tiny_resnet"  # global average pool: the same weights at every image size


def _env(tmp):
    return {"PYTHONPATH": str(ROOT / "tests"), "EDGEBRANCHY_TRUST_MODEL_CODE": "eb_fx_models",
            "EDGEBRANCHY_CACHE": str(tmp / "data-cache")}  # this test's data cache, not the user's


def _plan(tmp, out, *image):
    return run_cli("plan", MODEL, "--dataset", "imagefolder", "--data-dir", tmp / "images", *image,
                   "--train-samples", "60", "--head-epochs", "1", "--rounds", "1", "--cache", tmp / "cache",
                   "--out", out, env=_env(tmp))


def _ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_plan_on_an_image_folder_and_train_plan_from_its_next_command(tmp_path):
    make_image_folder(tmp_path / "images", per_class=10)
    r = _ok(_plan(tmp_path, tmp_path / "plan.json", "--image-size", "24", "--crop", "20", "--grayscale"))
    doc = json.loads((tmp_path / "plan.json").read_text())
    # what train --plan rebuilds the network from: one channel, the crop, the folder's three classes
    assert doc["input_shape"] == [1, 20, 20] and doc["num_classes"] == 3
    assert doc["dataset"]["name"] == "imagefolder" and doc["dataset"]["image"] == {"size": 24, "crop": 20,
                                                                                     "color": "L"}
    assert doc["costs"]["kind"] == "measured"
    [line] = [ln for ln in r.stdout.splitlines() if ln.startswith("next: ")]
    argv = shlex.split(line[len("next: "):])
    assert argv[:2] == ["edgebranchy", "train"]
    assert argv[2:] == ["--plan", str(tmp_path / "plan.json"), "--dataset", "imagefolder", "--data-dir",
                        str(tmp_path / "images"), "--image-size", "24", "--crop", "20", "--grayscale"]
    ck = tmp_path / "m.pt"
    _ok(run_cli(*argv[1:], "--epochs", "1", "--max-steps", "2", "--out", ck, "--quiet", env=_env(tmp_path)))
    from edgebranchy.models.checkpoint import load_checkpoint

    spec = load_checkpoint(ck).config["model"]
    assert spec["name"] == "planned" and spec["args"]["split_points"] == doc["split_points"]
    assert (spec["args"]["in_channels"], spec["args"]["input_size"], spec["args"]["num_classes"]) == (1, 20, 3)
    # the same command without the image flags reads the folder as the plan did (the plan file records how)
    t = _ok(run_cli(*argv[1:argv.index("--image-size")], "--epochs", "1", "--max-steps", "1", "--out",
                    tmp_path / "n.pt", env=_env(tmp_path)))
    assert "read as the plan read its own: --image-size 24 --crop 20 --grayscale" in t.stderr
    assert load_checkpoint(tmp_path / "n.pt").config["dataset"]["image"] == doc["dataset"]["image"]
    # other flags given: they win, and a shape the plan was not made for is refused in one line
    t = run_cli(*argv[1:argv.index("--image-size")], "--image-size", "32", "--epochs", "1", "--max-steps", "1",
                "--out", tmp_path / "o.pt", "--quiet", env=_env(tmp_path))
    assert t.returncode == 2 and "the plan is for 1x20x20 inputs; imagefolder is 3x32x32" in t.stderr
    # a folder of two classes for a plan of three: refused, not a network with the wrong number of outputs
    make_image_folder(tmp_path / "two", per_class=6, classes=("cat", "dog"))
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "two")
    t = run_cli(*argv[1:], "--epochs", "1", "--max-steps", "1", "--out", tmp_path / "p.pt", "--quiet",
                env=_env(tmp_path))
    assert t.returncode == 2 and "the plan is for 3 classes; imagefolder has 2" in t.stderr, t.stderr


def test_a_changed_image_size_does_not_reuse_the_cache(tmp_path):
    make_image_folder(tmp_path / "images", per_class=8)
    first = _ok(_plan(tmp_path, tmp_path / "a.json", "--image-size", "32"))
    assert "features cached for 0 of 6" in first.stderr and "costs measured earlier" not in first.stderr
    # a larger image: other features and, with the same weights (a global pool), other costs
    larger = _ok(_plan(tmp_path, tmp_path / "b.json", "--image-size", "40"))
    assert "features cached for 0 of 6" in larger.stderr and "exit heads cached for 0 of 5" in larger.stderr
    assert "costs measured earlier" not in larger.stderr
    # the same input shape read otherwise (resized to 40, cropped to 32): other features, the same costs
    cropped = _ok(_plan(tmp_path, tmp_path / "c.json", "--image-size", "40", "--crop", "32"))
    assert "features cached for 0 of 6" in cropped.stderr and "costs measured earlier" in cropped.stderr
    # and the first settings again reuse everything
    again = _ok(_plan(tmp_path, tmp_path / "d.json", "--image-size", "32"))
    assert "features cached for 6 of 6" in again.stderr and "exit heads cached for 5 of 5" in again.stderr
    assert "costs measured earlier" in again.stderr
    shapes = {p: json.loads((tmp_path / p).read_text())["input_shape"] for p in ("a.json", "b.json", "c.json")}
    assert shapes == {"a.json": [3, 32, 32], "b.json": [3, 40, 40], "c.json": [3, 32, 32]}


@pytest.mark.parametrize("flags, named", [
    (["--image-size", "32"], "--image-size"),
    (["--crop", "28", "--grayscale", "--strict-images"], "--crop, --grayscale, --strict-images"),
])
def test_image_flags_without_an_image_folder_are_one_line(tmp_path, capsys, flags, named):
    from edgebranchy.cli import main

    out = tmp_path / "plan.json"
    assert main(["plan", MODEL, "--dataset", "synthetic", *flags, "--cache", str(tmp_path / "cache"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"edgebranchy plan: error: {named}: for --dataset imagefolder only"], err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_the_image_flags_plan_prints_read_the_images_as_given():
    from edgebranchy.cli import build_parser
    from edgebranchy.cli._images import image_argv, image_options

    given = {"size": 40, "crop": 32, "color": "L", "mean": [0.485], "std": [0.229], "strict": True}
    for command in ("train", "plan"):
        head = [command] + (["m:f"] if command == "plan" else [])
        args = build_parser().parse_args(head + ["--dataset", "imagefolder", *image_argv(given)])
        assert image_options(args) == given
        assert image_options(build_parser().parse_args(head + ["--dataset", "imagefolder"])) is None
