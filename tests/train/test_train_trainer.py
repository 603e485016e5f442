"""The joint trainer (in process) and checkpoints: round trip and damaged files."""
from __future__ import annotations

import json
import pickletools
import zipfile

import numpy as np
import pytest
import torch

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models import build_model
from edgebranchy.models.checkpoint import FORMAT, load_checkpoint, save_checkpoint, update_config
from edgebranchy.train.trainer import TrainConfig, Trainer, default_exit_weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """B-LeNet: 1 baseline epoch then 4 joint epochs on 270 synthetic samples (9 steps an epoch)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("trainer") / "t.pt"
        cfg = TrainConfig(model="b-lenet", dataset="synthetic", limit=300, epochs=4, baseline_epochs=1,
                          batch_size=32, seed=0)
        trainer = Trainer(cfg, out, progress=False)
        config = trainer.run()
        return trainer, config, out
    finally:
        torch.set_num_threads(before)


def test_history_and_loss_decreases(trained):
    trainer, config, _ = trained
    phases = [(h["phase"], h["epoch"]) for h in trainer.history]
    assert phases == [("baseline", 1)] + [("joint", e) for e in range(1, 5)]
    joint = [h for h in trainer.history if h["phase"] == "joint"]
    assert all(h["steps"] == 9 for h in trainer.history)
    assert all(np.isfinite(h["loss"]) for h in joint)
    assert joint[-1]["loss"] < 0.7 * joint[0]["loss"], [h["loss"] for h in joint]
    assert joint[-1]["train_accuracy"][-1] > joint[0]["train_accuracy"][-1]
    assert trainer.weights == default_exit_weights(2) == [1.0, 0.3]
    # the data is learnable: the main exit beats chance clearly on validation
    assert config["validation"]["exit_accuracy"][-1] > 0.3
    assert config["validation"]["n"] == 30 and config["test"]["n"] == 300


def test_checkpoint_is_weights_only_with_a_json_config(trained):
    trainer, config, out = trained
    assert out.is_file() and not out.with_name(out.name + ".resume").exists()
    raw = torch.load(out, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == 1
    assert isinstance(raw["config"], str)
    cfg = json.loads(raw["config"])
    assert cfg["model"] == {"name": "b-lenet", "args": {"in_channels": 1, "num_classes": 10, "input_size": 28}}
    assert cfg["input"]["shape"] == [1, 28, 28] and cfg["input"]["scale"] == 255.0
    assert cfg["train"]["world_size"] == 1 and len(cfg["train"]["history"]) == 5
    assert set(raw["baseline"]) == set(trainer.net.main_state_dict())
    # nothing but tensors and plain data: the only globals in the pickle are torch's tensor rebuilders
    with zipfile.ZipFile(out) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    globals_ = {arg for op, arg, _ in pickletools.genops(pkl) if op.name == "GLOBAL"}
    assert globals_ and all(g.split()[0] in ("torch", "torch._utils", "collections") for g in globals_), globals_


def test_checkpoint_round_trip_outputs(trained):
    trainer, _, out = trained
    net, baseline = load_checkpoint(out).build()
    assert not net.training and not baseline.training
    x = trainer.x["test"][:64]
    trainer.net.eval()
    ref_base = build_model("b-lenet", trainer.model_args)
    ref_base.load_state_dict(trainer.baseline_state, strict=False)
    ref_base.eval()
    with torch.no_grad():
        for a, b in zip(net(x), trainer.net(x)):
            assert torch.equal(a, b)
        assert torch.equal(baseline(x), ref_base.baseline()(x))
        # the separately trained baseline is not the joint network's main branch
        assert not torch.equal(baseline(x), trainer.net(x)[-1])


def test_update_config(trained, tmp_path):
    _, _, out = trained
    p = tmp_path / "copy.pt"
    p.write_bytes(out.read_bytes())
    update_config(p, calibration={"thresholds": [0.1]})
    assert load_checkpoint(p).config["calibration"] == {"thresholds": [0.1]}
    assert load_checkpoint(out).config["calibration"] is None


def _expect(path, match):
    with pytest.raises(EdgeBranchyError, match=match) as e:
        load_checkpoint(path).build()
    assert str(path) in str(e.value)
    return str(e.value)


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "random.pt"
    for n in (0, 1, 7, 100, 4096):
        p.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        _expect(p, "not a readable edgebranchy checkpoint")
    for first in (b"hello", b'u"\x8f\x9eC\x01', b"r"):  # once escaped as KeyError, IndexError, struct.error
        p.write_bytes(first + bytes(20))
        _expect(p, "not a readable edgebranchy checkpoint")


def test_truncated(trained, tmp_path):
    _, _, out = trained
    data = out.read_bytes()
    p = tmp_path / "trunc.pt"
    for cut in (len(data) // 2, len(data) - 30, 100):
        p.write_bytes(data[:cut])
        _expect(p, "not a readable")


def test_other_torch_files(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"epoch": 3, "weights": torch.zeros(2)}, p)
    msg = _expect(p, "not an edgebranchy BranchyNet checkpoint")
    assert "edgebranchy train" in msg
    torch.save(torch.nn.Linear(3, 2).state_dict(), p)
    _expect(p, "not an edgebranchy BranchyNet checkpoint")
    torch.save(torch.nn.Linear(3, 2), p)  # a pickled module: refused by the weights-only loader
    _expect(p, "not a readable")
    torch.save({"format": FORMAT, "version": 99}, p)
    _expect(p, "version 99")
    torch.save({"format": FORMAT, "version": 1, "config": "{not json", "branchy": {}, "baseline": {}}, p)
    _expect(p, "damaged")


def test_weights_that_do_not_fit(tmp_path):
    p = tmp_path / "linear.pt"
    save_checkpoint(p, {"model": {"name": "b-lenet", "args": {}}}, torch.nn.Linear(3, 2).state_dict(), {})
    _expect(p, "BranchyNet weights do not fit")
    net = build_model("b-lenet")
    save_checkpoint(p, {"model": {"name": "b-alexnet", "args": {}}}, net.state_dict(), net.main_state_dict())
    _expect(p, "do not fit")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(EdgeBranchyError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_baseline_weights_that_do_not_fit(tmp_path):
    net = build_model("b-lenet")
    p = tmp_path / "badbase.pt"
    save_checkpoint(p, {"model": {"name": "b-lenet", "args": {}}}, net.state_dict(),
                    {"stages.0.0.weight": torch.zeros(3)})
    _expect(p, "baseline weights do not fit")


@pytest.mark.parametrize("model", ["b-lenet", {"args": {}}])
def test_malformed_model_config(tmp_path, model):
    p = tmp_path / "cfg.pt"
    save_checkpoint(p, {"model": model}, {}, {})
    _expect(p, "model")


def test_checkpoint_config_cannot_call_arbitrary_functions(tmp_path):
    marker = tmp_path / "created-by-checkpoint"
    p = tmp_path / "evil.pt"
    save_checkpoint(p, {"model": {"name": "os:mkdir", "args": {"path": str(marker)}}}, {}, {})
    with pytest.raises(EdgeBranchyError):
        load_checkpoint(p).build()
    assert not marker.exists(), "building the checkpoint called os.mkdir"


def _run_small(tmp_path, **kw):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(model="b-lenet", dataset="synthetic", limit=300, batch_size=32, seed=0, **kw)
        t = Trainer(cfg, tmp_path / "s.pt", progress=False)
        t.run()
        return t
    finally:
        torch.set_num_threads(before)


def test_max_steps_within_one_epoch(tmp_path):
    t = _run_small(tmp_path, epochs=3, baseline_epochs=2, max_steps=4)
    assert [(h["phase"], h["steps"]) for h in t.history] == [("baseline", 4), ("joint", 4)]


def test_max_steps_bounds_the_phase(tmp_path):
    t = _run_small(tmp_path, epochs=3, baseline_epochs=0, max_steps=20)
    assert sum(h["steps"] for h in t.history) <= 20


def test_exit_weights_must_match_the_exits(tmp_path):
    with pytest.raises(EdgeBranchyError, match="needs 2 values"):
        Trainer(TrainConfig(dataset="synthetic", limit=100, exit_weights=[1.0, 0.5, 0.2]), tmp_path / "w.pt",
                progress=False)
