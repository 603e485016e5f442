"""--init-weights with --init-skip: an ImageNet-shaped state_dict (1000-class classifier) loads into a model with
fewer classes, the skipped module left as initialised; typos and a frozen untrained classifier are refused."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from eb_testutil import run_cli
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models import from_model
from edgebranchy.models.custom import load_init_weights
from edgebranchy.models.tv_compat import mobilenet_v2, resnet18

TESTS = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]),
       "EDGEBRANCHY_TRUST_MODEL_CODE": "eb_fx_models"}


def _imagenet(tmp_path, fn, name="imagenet.pt"):
    torch.manual_seed(3)
    sd = fn(num_classes=1000).state_dict()
    torch.save(sd, tmp_path / name)
    return tmp_path / name, sd


@pytest.mark.parametrize("fn,points,prefix,head", [
    (resnet18, ["layer1", "layer2"], "fc", "fc"),
    (mobilenet_v2, ["features.3", "features.6"], "classifier", "classifier.1"),
])
def test_skip_leaves_the_classifier_and_loads_everything_else(tmp_path, fn, points, prefix, head):
    f, sd = _imagenet(tmp_path, fn)
    torch.manual_seed(0)
    net = from_model(fn(num_classes=10), points, (3, 32, 32), 10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(EdgeBranchyError, match=rf"{head}\.weight has shape \[1000, .*`init_skip` {prefix} leaves"):
        load_init_weights(net, f)
    info = load_init_weights(net, f, skip=[prefix])
    after = net.state_dict()
    main = [k for k in after if k.startswith("stages.")]
    mine = {k: k.split(".", 2)[2] for k in main}
    kept = [k for k in main if mine[k].startswith(prefix + ".")]
    assert sorted(kept) == info["skipped"] and len(kept) == 2 and info["skip"] == [prefix]
    assert all(torch.equal(after[k], before[k]) for k in kept)          # the classifier: as initialised
    assert all(torch.equal(after[k], sd[mine[k]]) for k in main if k not in kept)  # the rest: the file's
    assert info["loaded"] == len(main) - 2
    side = [k for k in after if k.startswith("exits.")]
    assert side and all(torch.equal(after[k], before[k]) for k in side)


def test_skip_prefixes_must_name_a_module(tmp_path):
    f, _ = _imagenet(tmp_path, resnet18)
    net = from_model(resnet18(num_classes=10), ["layer1"], (3, 32, 32), 10)
    with pytest.raises(EdgeBranchyError, match="`init_skip` 'f': no weight"):  # a prefix of a name is not a path
        load_init_weights(net, f, skip=["f"])
    with pytest.raises(EdgeBranchyError, match="`init_skip` 'classifier': no weight"):
        load_init_weights(net, f, skip=["classifier"])
    info = load_init_weights(net, f, skip=["fc", "layer4.1"])  # any module path, several at once
    assert len(info["skipped"]) == 2 + 12 and all(".fc." in k or ".layer4.1." in k for k in info["skipped"])


def test_file_without_the_classifier_says_what_to_skip(tmp_path):
    sd = {k: v for k, v in resnet18(num_classes=10).state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, tmp_path / "headless.pt")
    net = from_model(resnet18(num_classes=10), ["layer1"], (3, 32, 32), 10)
    with pytest.raises(EdgeBranchyError, match=r"missing 2 key\(s\).*`init_skip` fc leaves"):
        load_init_weights(net, tmp_path / "headless.pt")
    assert load_init_weights(net, tmp_path / "headless.pt", skip=["fc"])["skipped"] == ["stages.1.fc.bias",
                                                                                         "stages.1.fc.weight"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    from eb_images import make_image_folder

    root = tmp_path_factory.mktemp("skip") / "images"
    make_image_folder(root, per_class=6, bad=False)
    return root


def _train(folder, out, *extra):
    return run_cli("train", "--model", "eb_fx_models:tv_resnet18_branchy", "--dataset", "imagefolder",
                   "--data-dir", folder, "--image-size", "32", "--epochs", "1", "--max-steps", "1",
                   "--batch-size", "6", "--quiet", "--out", out, *extra, env=ENV)


def test_cli_trains_from_an_imagenet_shaped_state_dict(tmp_path, folder):
    from edgebranchy.models.checkpoint import load_checkpoint

    f, _ = _imagenet(tmp_path, resnet18)
    r = _train(folder, tmp_path / "m.pt", "--init-weights", f, "--init-skip", "fc")
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = load_checkpoint(tmp_path / "m.pt").config
    assert cfg["train"]["init_skip"] == ["fc"]
    info = cfg["train"]["init_weights"]
    assert info["skip"] == ["fc"] and info["skipped"] == ["stages.2.fc.bias", "stages.2.fc.weight"]
    r = _train(folder, tmp_path / "n.pt", "--init-weights", f)                 # without it: the way out
    assert r.returncode == 2 and "--init-skip fc" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,match", [
    (["--init-skip", "fc", "--freeze-backbone"], "drop --freeze-backbone"),
    (["--init-skip", "fc"], "applies to the weights of --init-weights"),  # no file
])
def test_cli_refuses_a_skip_that_cannot_train(tmp_path, folder, extra, match):
    f, _ = _imagenet(tmp_path, resnet18)
    extra = (["--init-weights", f] if "--freeze-backbone" in extra else []) + extra
    r = _train(folder, tmp_path / "x.pt", *extra)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
