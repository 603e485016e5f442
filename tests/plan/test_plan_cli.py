"""`edgebranchy plan` end to end on a user's model (real ONNX Runtime timings, real files), `train --plan` consuming
its plan, and a plan killed with SIGKILL continuing from its cache."""
from __future__ import annotations

import json

import pytest

from eb_testutil import ROOT, run_cli, run_cli_with

ENV = {"PYTHONPATH": str(ROOT / "tests"), "EDGEBRANCHY_TRUST_MODEL_CODE": "eb_fx_models"}
MODEL = "eb_fx_models:tiny_resnet"


def _plan(tmp, cache, out, *extra, prelude=None):
    args = ["plan", MODEL, "--dataset", "synthetic", "--train-samples", "400", "--head-epochs", "2",
            "--cache", str(cache), "--out", str(out), *extra]
    if prelude:
        return run_cli_with(prelude, *args, env=ENV)
    return run_cli(*args, env=ENV)


def test_plan_measures_on_onnxruntime_and_train_plan_builds_the_planned_network(tmp_path):
    r = _plan(tmp_path, tmp_path / "cache", tmp_path / "plan.json", "--rounds", "2", "--max-exits", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    c = doc["costs"]
    assert c["kind"] == "measured" and "ONNX Runtime" in c["source"] and c["batch_size"] == 1
    names = [x["name"] for x in doc["candidates"]]
    assert names == ["relu", "layer1.0", "layer1", "layer2.0", "layer2"]
    assert all(c["prefix"][n] > 0 and c["head"][n] > 0 for n in names) and c["baseline"] > 0
    # the prefix up to a later block costs more than up to an earlier one by a wide margin (a whole stage)
    assert c["prefix"]["layer2"] > c["prefix"]["relu"]
    assert 1 <= len(doc["split_points"]) <= 2 and set(doc["split_points"]) <= set(names)
    assert doc["expected"]["accuracy"] >= doc["final_accuracy"] - 0.005 - 1e-9
    assert "chosen" in r.stdout and "frontier" in r.stdout
    assert (tmp_path / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ck = tmp_path / "m.pt"
    t = run_cli("train", "--plan", tmp_path / "plan.json", "--dataset", "synthetic", "--epochs", "1",
                "--max-steps", "2", "--out", ck, "--quiet", env=ENV)
    assert t.returncode == 0, t.stderr
    from edgebranchy.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(ck)
    spec = ckpt.config["model"]
    assert spec["name"] == "planned" and spec["args"]["split_points"] == doc["split_points"]
    assert spec["args"]["backbone"] == MODEL and spec["args"]["head"] == doc["head"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "eb_fx_models")
        net, _ = ckpt.build()
    assert net.num_exits == len(doc["split_points"]) + 1


def test_a_planned_checkpoint_runs_its_backbone_factory_only_when_trusted(tmp_path, monkeypatch):
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.models.checkpoint import Checkpoint

    monkeypatch.delenv("EDGEBRANCHY_TRUST_MODEL_CODE", raising=False)
    ck = Checkpoint(tmp_path / "x.pt", {"model": {"name": "planned", "args": {"backbone": "os:system"}}}, {}, {})
    with pytest.raises(EdgeBranchyError, match="not a zoo network"):
        ck.build()


@pytest.mark.parametrize("extra, message", [
    (["--model", "b-lenet"], "--plan gives the model"),
    ([], "not an edgebranchy plan file"),
])
def test_train_plan_refuses_in_one_line(tmp_path, extra, message):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"schema": "something else"}))
    r = run_cli("train", "--plan", bad, "--dataset", "synthetic", "--out", tmp_path / "m.pt", *extra, env=ENV)
    assert r.returncode == 2 and message in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if not ln.endswith(" ...")]) == 1


KILL_AFTER_SECOND_HEAD = """
import os, signal
from edgebranchy.plan import heads as _heads
_real, _n = _heads.head_logits, [0]
def _kill_after_two(*a, **kw):
    out = _real(*a, **kw)
    _n[0] += 1
    if _n[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
_heads.head_logits = _kill_after_two
"""


def test_a_killed_plan_continues_from_its_cached_features_and_heads(tmp_path):
    killed = _plan(tmp_path, tmp_path / "c1", tmp_path / "p1.json", "--cost", "macs", prelude=KILL_AFTER_SECOND_HEAD)
    assert killed.returncode == -9 and not (tmp_path / "p1.json").exists()
    again = _plan(tmp_path, tmp_path / "c1", tmp_path / "p1.json", "--cost", "macs")
    assert again.returncode == 0, again.stderr
    assert "features cached for 6 of 6" in again.stderr and "exit heads cached for 2 of 5" in again.stderr
    whole = _plan(tmp_path, tmp_path / "c2", tmp_path / "p2.json", "--cost", "macs")
    assert "features cached for 0 of 6" in whole.stderr and "exit heads cached for 0 of 5" in whole.stderr
    a, b = (json.loads((tmp_path / p).read_text()) for p in ("p1.json", "p2.json"))
    assert a["costs"]["kind"] == "macs" and "not measured" in a["costs"]["source"]
    for key in ("split_points", "expected", "candidates", "frontier"):
        assert a[key] == b[key]


def test_plan_b_resnet_on_the_zoo_checkpoint_and_train_plan_keeps_the_zoo_main_path(tmp_path):
    """The zoo B-ResNet (depth 8) trained jointly; `plan b-resnet --depth 8` on its main path; the paper placement
    trained from the plan on the frozen backbone: its main path is the zoo checkpoint's, output for output."""
    import torch

    from edgebranchy.models.backbones import build_backbone
    from edgebranchy.models.checkpoint import load_checkpoint
    from edgebranchy.plan.run import _load_weights

    zoo = tmp_path / "zoo.pt"
    r = run_cli("train", "--model", "b-resnet", "--depth", "8", "--dataset", "synthetic", "--epochs", "1",
                "--max-steps", "2", "--out", zoo, "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("plan", "b-resnet", "--depth", "8", "--init-weights", zoo, "--dataset", "synthetic",
                "--train-samples", "300", "--head-epochs", "1", "--rounds", "2", "--cache", tmp_path / "cache",
                "--out", tmp_path / "plan.json")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["backbone"] == "b-resnet" and doc["backbone_args"] == {"depth": 8}
    assert [c["name"] for c in doc["candidates"]] == ["stem", "layer1", "layer2", "layer3"]
    assert doc["reference"]["split_points"] == ["stem", "layer1"] and doc["costs"]["kind"] == "measured"
    shapes = {c["name"]: c["feature_shape"] for c in doc["candidates"]}
    assert shapes["stem"] == [16, 26, 26] and shapes["layer3"] == [64, 7, 7]

    back = build_backbone("b-resnet", {"depth": 8, "in_channels": 1, "num_classes": 10, "input_size": 28})
    _load_weights(back, str(zoo))
    torch.save(back.state_dict(), tmp_path / "backbone.pt")
    ref = dict(doc, split_points=["stem", "layer1"], head_shapes=[shapes["stem"], shapes["layer1"]])
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    r = run_cli("train", "--plan", tmp_path / "ref.json", "--freeze-backbone", "--init-weights",
                tmp_path / "backbone.pt", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "2",
                "--out", tmp_path / "ref.pt", "--quiet")
    assert r.returncode == 0, r.stderr
    net, _ = load_checkpoint(tmp_path / "ref.pt").build()
    _, zoo_base = load_checkpoint(zoo).build()
    assert net.num_exits == 3
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(net.eval().baseline()(x), zoo_base.eval()(x), rtol=1e-5, atol=1e-5)
    bad = run_cli("plan", "b-alexnet", "--depth", "8", "--dataset", "synthetic", "--out", tmp_path / "x.json")
    assert bad.returncode == 2 and "--depth applies to b-resnet only" in bad.stderr
