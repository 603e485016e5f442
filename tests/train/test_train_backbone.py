"""Training a user's model: frozen backbone (only the side heads learn), weights from the user's file,
image folders streamed batch by batch."""
from __future__ import annotations

import pytest
import torch

from eb_fx_models import TinyResNet, resnet_branchy, resnet_weights
from eb_images import make_image_folder
from edgebranchy.data import load_dataset
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.checkpoint import load_checkpoint
from edgebranchy.models.custom import load_init_weights
from edgebranchy.train.trainer import TrainConfig, Trainer

pytest.importorskip("PIL", reason="Pillow is not installed")
MODEL = "eb_fx_models:resnet_branchy"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs") / "folder"
    make_image_folder(root, per_class=10, bad=False)
    return root


@pytest.fixture(scope="module")
def bundle(images):
    return load_dataset("imagefolder", images, image={"size": 16})


def _cfg(**kw) -> TrainConfig:
    base = dict(model=MODEL, dataset="imagefolder", epochs=1, max_steps=3, batch_size=8, image={"size": 16})
    return TrainConfig(**{**base, **kw})


def test_frozen_backbone_trains_only_the_side_heads(tmp_path, bundle, monkeypatch):
    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "eb_fx_models")
    before = resnet_branchy(num_classes=3, input_size=16).state_dict()
    tr = Trainer(_cfg(freeze_backbone=True), tmp_path / "f.pt", progress=False, data=bundle)
    assert tr._phases() == [("joint", 1)]
    config = tr.run()
    after = tr.net.state_dict()
    main = set(tr.net.main_state_dict())
    assert main and all(torch.equal(before[k], after[k]) for k in main)  # running stats included
    side = [k for k in after if k.startswith("exits.0.") and k.endswith("weight")]
    assert side and any(not torch.equal(before[k], after[k]) for k in side)
    assert config["validation"]["baseline_accuracy"] == config["validation"]["exit_accuracy"][-1]
    assert config["train"]["freeze_backbone"] is True
    net, base = load_checkpoint(tmp_path / "f.pt").build()
    model = TinyResNet(3, 3)
    model.load_state_dict({k.split(".", 2)[2]: v for k, v in before.items() if k.startswith("stages.")})
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(base(x), model.eval()(x))  # the baseline is the given model, unchanged


def test_frozen_backbone_refuses_a_baseline_phase(tmp_path, bundle):
    with pytest.raises(EdgeBranchyError, match="no baseline phase"):
        Trainer(_cfg(freeze_backbone=True, baseline_epochs=1), tmp_path / "x.pt", progress=False, data=bundle)


def test_init_weights_load_the_users_state_dict(tmp_path, bundle):
    f = tmp_path / "w.pt"
    resnet_weights(str(f), num_classes=3)
    want = torch.load(f, weights_only=True)
    tr = Trainer(_cfg(init_weights=str(f), freeze_backbone=True), tmp_path / "i.pt", progress=False, data=bundle)
    got = tr.net.state_dict()
    assert torch.equal(got["stages.0.conv1.weight"], want["conv1.weight"])
    assert torch.equal(got["stages.2.fc.weight"], want["fc.weight"])
    assert tr.init_info["form"] == "backbone" and tr.init_info["loaded"] == len(tr.net.main_state_dict())
    config = tr.run()
    assert config["train"]["init_weights"]["sha256"] == tr.init_info["sha256"]
    assert torch.equal(tr.net.state_dict()["stages.1.layer2.0.conv1.weight"], want["layer2.0.conv1.weight"])


def test_init_weights_wrappers_and_prefixes(tmp_path):
    net = resnet_branchy(num_classes=3, input_size=16)
    sd = TinyResNet(3, 3).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pt")
    assert load_init_weights(net, tmp_path / "ddp.pt")["form"] == "backbone"
    assert torch.equal(net.state_dict()["stages.0.bn1.running_var"], sd["bn1.running_var"])
    torch.save(net.state_dict(), tmp_path / "own.pt")
    assert load_init_weights(resnet_branchy(num_classes=3, input_size=16), tmp_path / "own.pt")["form"] == \
        "branchynet"


@pytest.mark.parametrize("make,match", [
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith("fc.")}, r"missing 2 key\(s\).*fc\.bias"),
    (lambda sd: {**sd, "head.weight": torch.zeros(1)}, r"1 key\(s\) the network does not have.*head\.weight"),
    (lambda sd: {**sd, "fc.weight": torch.zeros(10, 16)}, r"fc\.weight has shape \[10, 16\].*\[3, 16\]"),
    (lambda sd: [1, 2], "does not hold a state_dict"),
    (lambda sd: {"format": "edgebranchy.checkpoint"}, "is an edgebranchy checkpoint"),
])
def test_init_weights_mismatch_is_a_clear_error(tmp_path, make, match):
    torch.save(make(TinyResNet(3, 3).state_dict()), tmp_path / "bad.pt")
    with pytest.raises(EdgeBranchyError, match=match):
        load_init_weights(resnet_branchy(num_classes=3, input_size=16), tmp_path / "bad.pt")


def test_init_weights_refuses_pickled_objects_and_missing_files(tmp_path):
    torch.save({"model": TinyResNet(3, 3)}, tmp_path / "pickled.pt")  # a whole module: code, not weights
    with pytest.raises(EdgeBranchyError, match="not a weights-only state_dict"):
        load_init_weights(resnet_branchy(num_classes=3, input_size=16), tmp_path / "pickled.pt")
    with pytest.raises(EdgeBranchyError, match="not found"):
        load_init_weights(resnet_branchy(num_classes=3, input_size=16), tmp_path / "none.pt")


def test_image_folder_streams_batches_into_the_trainer(tmp_path, images, monkeypatch):
    import edgebranchy.data.imagefolder as imf

    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "eb_fx_models")
    decoded = []
    real = imf.load_image
    monkeypatch.setattr(imf, "load_image", lambda p, s: decoded.append(p) or real(p, s))
    opts = {"size": 16, "mean": [0.5] * 3, "std": [0.25] * 3}  # given statistics: no images decoded for them
    tr = Trainer(_cfg(max_steps=2, image=opts, data_dir=str(images)), tmp_path / "s.pt", progress=False)
    assert not isinstance(tr.x["train"], torch.Tensor) and decoded == []  # nothing decoded up front
    xb = tr.x["train"][torch.tensor([0, 3])]
    assert xb.dtype == torch.float32 and tuple(xb.shape) == (2, 3, 16, 16) and len(decoded) == 2
    config = tr.run()
    assert config["input"]["resize"] == 16 and config["input"]["crop"] == [16, 16]
    assert config["dataset"]["image"] == opts and config["input"]["mean"] == [0.5] * 3
