"""The placement search, the candidates and the plan file (in process; the command itself: test_plan_cli.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.backbones import alexnet
from edgebranchy.models.fx import from_model
from edgebranchy.plan.candidates import candidates
from edgebranchy.plan.features import prefix_module
from edgebranchy.plan.file import read_plan, write_plan
from edgebranchy.plan.search import evaluate_placement, search, segment_costs

from eb_fx_models import TinyResNet


def test_default_candidates_are_block_boundaries_with_one_tensor_crossing():
    c = candidates(TinyResNet(3, 4))
    assert [x.name for x in c] == ["relu", "layer1.0", "layer1", "layer2.0", "layer2"]
    assert all(x.single for x in c)
    inner = candidates(TinyResNet(3, 4), ["layer1.1.relu", "layer2.0"])
    assert [(x.name, x.single) for x in inner] == [("layer1.1.relu", False), ("layer2.0", True)]
    with pytest.raises(EdgeBranchyError, match="output"):
        candidates(TinyResNet(3, 4), ["fc"])
    # B-AlexNet's backbone: conv block ends, none inside the classifier's last layer
    assert [x.name for x in candidates(alexnet(1, 10, 28))] == ["3", "7", "9", "11", "15", "18"]


def test_prefix_module_returns_the_values_from_model_passes_on():
    torch.manual_seed(0)
    model = TinyResNet(3, 4).eval()
    x = torch.randn(2, 3, 16, 16)
    net = from_model(model, ["layer1", "layer2.0"], (3, 16, 16), 4).eval()
    with torch.no_grad():
        a, b, out = prefix_module(model, ["layer1", "layer2.0", "output"])(x)
        s0 = net.stages[0](x)
        s1 = net.stages[1](s0)
        assert torch.equal(a, s0) and torch.equal(b, s1) and torch.equal(out, model(x))


def test_alexnet_backbone_is_the_zoo_main_path():
    from edgebranchy.models.zoo.alexnet import b_alexnet

    torch.manual_seed(0)
    zoo = b_alexnet(1, 10, 28).eval()
    back = alexnet(1, 10, 28).eval()
    back.load_state_dict(dict(zip(back.state_dict(), zoo.main_state_dict().values())))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(back(x), zoo.baseline()(x), atol=1e-6)


@pytest.mark.parametrize("depth", [8, 20])
def test_resnet_backbone_is_the_zoo_main_path_and_its_paper_points_are_the_zoo_exits(tmp_path, depth):
    from edgebranchy.models.backbones import PAPER_POINTS, build_backbone, planned
    from edgebranchy.models.custom import load_init_weights
    from edgebranchy.models.zoo.resnet import b_resnet

    torch.manual_seed(0)
    zoo = b_resnet(depth, 1, 10, 28)
    with torch.no_grad():  # every weight and batch-norm statistic distinct: a wrong order cannot go unseen
        for v in zoo.state_dict().values():
            if v.is_floating_point():
                v.copy_(torch.rand_like(v) * 0.5 + 0.75)
    zoo.eval()
    back = build_backbone("b-resnet", {"depth": depth, "in_channels": 1, "num_classes": 10, "input_size": 28}).eval()
    back.load_state_dict(dict(zip(back.state_dict(), zoo.main_state_dict().values())))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        want = zoo.baseline()(x)
        assert torch.allclose(back(x), want, rtol=1e-5, atol=1e-5)
    n = (depth - 2) // 6
    # every BasicBlock's output, a stage's last one named by its stage ("layer1.0", "layer1.1", "layer1", ...)
    blocks = [name for i in (1, 2, 3) for name in [*(f"layer{i}.{j}" for j in range(n - 1)), f"layer{i}"]]
    assert [c.name for c in candidates(back)] == ["stem", *blocks]
    assert [(c.name, c.single) for c in candidates(back, PAPER_POINTS["b-resnet"])] == [("stem", True),
                                                                                        ("layer1", True)]
    # the paper placement on the backbone (train --plan --init-weights): its stages are the zoo's, its main path too
    torch.save(back.state_dict(), tmp_path / "backbone.pt")
    net = planned("b-resnet", PAPER_POINTS["b-resnet"], "conv", 1, 10, 28, {"depth": depth})
    load_init_weights(net, tmp_path / "backbone.pt")
    net.eval()
    with torch.no_grad():
        s0, z0 = net.stages[0](x), zoo.stages[0](x)
        assert torch.allclose(s0, z0, rtol=1e-5, atol=1e-5)
        assert torch.allclose(net.stages[1](s0), zoo.stages[1](z0), rtol=1e-5, atol=1e-5)
        assert torch.allclose(net.baseline()(x), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(EdgeBranchyError, match="6n\\+2"):
        build_backbone("b-resnet", {"depth": depth + 1})
    with pytest.raises(EdgeBranchyError, match="`depth` must be at most 1202"):  # before any layer is allocated
        build_backbone("b-resnet", {"depth": 1208})


def _problem(n=400, seed=0):
    """Exit A (cheap prefix) and exit B (late prefix) each right on the samples where the final exit is, and
    confident there; wrong and unsure on the rest."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    final = np.eye(4)[y] * 8.0
    easy = np.arange(n) % 5 < 3  # exactly 60%

    def head():
        z = rng.normal(0, 0.1, (n, 4))
        z[easy, y[easy]] += 9.0
        z[~easy, (y[~easy] + 1) % 4] += 0.05  # unsure and wrong
        return z

    return y, final, {"A": head(), "B": head()}


def test_search_follows_the_measured_costs_not_the_position():
    y, final, logits = _problem()
    cheap_a = {"baseline": 100.0, "prefix": {"A": 10.0, "B": 50.0}, "head": {"A": 1.0, "B": 1.0}}
    res = search(["A", "B"], logits, final, y, cheap_a, max_exits=1, max_accuracy_drop=0.5)
    assert res["chosen"]["split_points"] == ["A"]
    # the same network where the measurement says the earlier prefix costs more (MACs would not show it)
    cheap_b = {"baseline": 100.0, "prefix": {"A": 60.0, "B": 20.0}, "head": {"A": 1.0, "B": 1.0}}
    res = search(["A", "B"], logits, final, y, cheap_b, max_exits=1, max_accuracy_drop=0.0)
    assert res["chosen"]["split_points"] == ["B"]
    ch = res["chosen"]
    # 60% leave at B for 21, the rest pay 21 + 80: expected 0.6 * 21 + 0.4 * 101 = 53 of 100
    assert ch["relative_cost"] == pytest.approx(0.53)
    assert ch["speedup"] == pytest.approx(1 / 0.53)
    assert ch["accuracy"] == 1.0 and ch["exit_fractions"] == [0.6, 0.4]


def test_search_is_the_best_over_every_placement_and_never_worse_than_a_reference():
    y, final, logits = _problem(seed=3)
    costs = {"baseline": 100.0, "prefix": {"A": 30.0, "B": 45.0}, "head": {"A": 5.0, "B": 2.0}}
    res = search(["A", "B"], logits, final, y, costs, max_exits=2, max_accuracy_drop=0.5)
    every = [evaluate_placement(p, logits, final, y, costs, 0.5, None) for p in (["A"], ["B"], ["A", "B"])]
    assert res["chosen"]["relative_cost"] == min(r["relative_cost"] for r in every)
    assert len(res["placements"]) == 3 and res["infeasible"] == 0


def test_segment_costs_are_prefix_differences_plus_heads():
    costs = {"baseline": 100.0, "prefix": {"A": 30.0, "B": 28.0}, "head": {"A": 5.0, "B": 2.0}}
    assert segment_costs(["A"], costs) == [35.0, 70.0]
    # B timed a little below A (noise): its segment never goes negative
    assert segment_costs(["A", "B"], costs) == [35.0, 2.0, 72.0]


def _doc():
    return {"schema": "edgebranchy.plan", "schema_version": 1, "backbone": "b-alexnet", "backbone_args": {},
            "split_points": ["3", "9"], "head": "conv", "head_shapes": [[32, 14, 14], [96, 7, 7]],
            "input_shape": [1, 28, 28], "num_classes": 10}


@pytest.mark.parametrize("change, message", [
    ({"schema": "x"}, "not an edgebranchy plan file"),
    ({"schema_version": 9}, "version 9"),
    ({"split_points": []}, "`split_points`"),
    ({"split_points": ["3", "3"]}, "`split_points`"),
    ({"head": "mlp"}, "`head` must be one of"),
    ({"head_shapes": [[32, 14, 14]]}, "`head_shapes`"),
    ({"input_shape": [1, 28, 27]}, "`input_shape`"),
    ({"num_classes": True}, "`num_classes`"),
])
def test_plan_reader_refuses_a_damaged_plan(tmp_path, change, message):
    p = tmp_path / "plan.json"
    write_plan(p, _doc())
    assert read_plan(p)["split_points"] == ["3", "9"]
    p.write_text(json.dumps({**_doc(), **change}))
    with pytest.raises(EdgeBranchyError, match=message) as e:
        read_plan(p)
    assert "\n" not in str(e.value)


def test_budget_mode_takes_the_most_accurate_placement_within_the_budget():
    y, final, logits = _problem()
    costs = {"baseline": 100.0, "prefix": {"A": 10.0, "B": 50.0}, "head": {"A": 1.0, "B": 1.0}}
    res = search(["A", "B"], logits, final, y, costs, max_exits=1, budget=0.5)
    ch = res["chosen"]
    # A: 60% leave for 11, the rest pay 101: 0.47 of the model at full accuracy; B cannot keep it within 0.5
    assert ch["split_points"] == ["A"] and ch["relative_cost"] == pytest.approx(0.47) and ch["accuracy"] == 1.0
    assert all(r["relative_cost"] <= 0.5 + 1e-9 for r in res["placements"]) and ch["exact"]
    with pytest.raises(EdgeBranchyError, match="exactly one"):
        search(["A"], logits, final, y, costs, max_exits=1, budget=0.5, max_accuracy_drop=1.0)
