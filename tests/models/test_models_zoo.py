"""The paper's networks: output shapes, MACs, baseline path and segments."""
from __future__ import annotations

import functools

import pytest
import torch

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models import BranchyNet, build_model
from edgebranchy.models.segments import fused_costs, kept_exits, segment_graphs
from edgebranchy.models.summary import count_macs, summarize

PAPER_INPUT = {"b-lenet": (1, 28), "b-alexnet": (3, 32), "b-resnet": (3, 32)}
NUM_EXITS = {"b-lenet": 2, "b-alexnet": 3, "b-resnet": 3}

ZOO = [
    pytest.param("b-lenet", {}, id="b-lenet"),
    pytest.param("b-alexnet", {}, id="b-alexnet"),
    pytest.param("b-resnet", {"depth": 20}, id="b-resnet-20"),
    pytest.param("b-resnet", {"depth": 110}, id="b-resnet-110"),
]


def _net(name: str, args: dict, channels: int, size: int) -> BranchyNet:
    """One network per configuration for the whole module (tests only read them)."""
    return _cached(name, tuple(sorted(args.items())), channels, size)


@functools.lru_cache(maxsize=None)
def _cached(name: str, args: tuple, channels: int, size: int) -> BranchyNet:
    torch.manual_seed(0)
    net = build_model(name, {**dict(args), "in_channels": channels, "input_size": size, "num_classes": 10})
    return net.eval()


@pytest.mark.parametrize("name,args", ZOO)
@pytest.mark.parametrize("where", ["paper", "28x28x1"])
def test_forward_returns_k_logits(name, args, where):
    c, s = PAPER_INPUT[name] if where == "paper" else (1, 28)
    net = _net(name, args, c, s)
    assert net.num_exits == NUM_EXITS[name]
    with torch.no_grad():
        outs = net(torch.randn(3, c, s, s))
    assert isinstance(outs, list) and len(outs) == NUM_EXITS[name]
    for o in outs:
        assert o.shape == (3, 10) and o.dtype == torch.float32
        assert torch.isfinite(o).all()


def test_resnet_depth_changes_the_trunk_only():
    r20, r32 = _net("b-resnet", {"depth": 20}, 3, 32), _net("b-resnet", {"depth": 32}, 3, 32)
    blocks = lambda n: sum(1 for m in n.modules() if type(m).__name__ == "BasicBlock")  # noqa: E731
    # 3 stages of n blocks each, plus the one block in branch 1
    assert blocks(r20) == 3 * 3 + 1 and blocks(r32) == 3 * 5 + 1


@pytest.mark.parametrize("depth", [0, 7, 21, -4])
def test_resnet_bad_depth(depth):
    with pytest.raises(EdgeBranchyError, match="6n"):
        build_model("b-resnet", {"depth": depth})


def test_count_macs_of_one_conv_and_linear():
    conv = torch.nn.Conv2d(1, 5, 5, padding=3)
    macs, shape = count_macs(conv, (1, 28, 28))
    assert shape == (5, 30, 30) and macs == 5 * 30 * 30 * 25
    macs, shape = count_macs(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7)), (3, 2, 2))
    assert shape == (7,) and macs == 12 * 7


def test_b_lenet_macs_match_the_paper():
    s = summarize(_net("b-lenet", {}, 1, 28), (1, 28, 28))
    e0, e1 = s["exits"]
    assert s["baseline_macs"] == pytest.approx(1.14e6, rel=0.01)
    assert e0["macs_to_exit"] == pytest.approx(0.22e6, rel=0.01)  # conv1 + branch
    rest = s["baseline_macs"] - e0["stage_macs"]
    assert rest == pytest.approx(1.03e6, rel=0.01)
    assert e1["macs_to_exit"] == s["baseline_macs"]
    # conv1's 5x30x30 output is pooled once, before the split (shared by branch and main path)
    assert e0["feature_shape"] == [5, 15, 15] and e1["feature_shape"] == [720]  # the paper's 720 -> 84 FC


def test_b_lenet_equals_the_papers_layer_order():
    """Moving the shared pool + ReLU before the split leaves the function unchanged."""
    import torch.nn.functional as F

    net = _net("b-lenet", {}, 1, 28).eval()
    conv1, pool_, _ = net.stages[0]
    bconv, _, _, _, bfc = net.exits[0]
    conv2, _, _, conv3, _, _, _ = net.stages[1]
    fc1, fc2 = net.exits[1]
    x = torch.randn(7, 1, 28, 28)

    def p(t):
        return F.max_pool2d(t, 2, ceil_mode=True)

    with torch.no_grad():
        c1 = conv1(x)  # [exit 0 here] in the paper's code
        branch = bfc(F.relu(p(bconv(F.relu(p(c1))))).flatten(1))
        main = F.relu(p(conv3(F.relu(p(conv2(F.relu(p(c1))))))))
        main = fc2(fc1(main.flatten(1)))
        out = net(x)
    torch.testing.assert_close(out[0], branch)
    torch.testing.assert_close(out[1], main)


def test_b_lenet_layer_sizes_follow_the_paper():
    net = _net("b-lenet", {}, 1, 28)
    lin = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(640, 10), (720, 84), (84, 10)]
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools and all(p.ceil_mode for p in pools)


@pytest.mark.parametrize("name,args", ZOO[:3])
def test_baseline_equals_last_exit_exactly(name, args):
    c, s = PAPER_INPUT[name]
    net = _net(name, args, c, s)
    x = torch.randn(4, c, s, s)
    with torch.no_grad():
        outs = net(x)
        base = net.baseline().eval()(x)
    assert torch.equal(base, outs[-1])


@pytest.mark.parametrize("name,args", ZOO[:3])
def test_main_state_dict_is_the_baseline_path(name, args):
    c, s = PAPER_INPUT[name]
    net = _net(name, args, c, s)
    k = net.num_exits
    keys = set(net.main_state_dict())
    full = set(net.state_dict())
    expected = {n for n in full if n.startswith("stages.") or n.startswith(f"exits.{k - 1}.")}
    assert keys == expected and keys < full
    assert not any(n.startswith(f"exits.{j}.") for n in keys for j in range(k - 1))
    # the parameters of the baseline module are exactly main_parameters()
    assert {id(p) for p in net.baseline().parameters()} == {id(p) for p in net.main_parameters()}
    # loading only the main path into a fresh net reproduces the baseline's outputs
    torch.manual_seed(123)
    fresh = build_model(name, {**args, "in_channels": c, "input_size": s}).eval()
    missing, unexpected = fresh.load_state_dict(net.main_state_dict(), strict=False)
    assert not unexpected and missing and all(m.startswith("exits.") for m in missing)
    x = torch.randn(2, c, s, s)
    with torch.no_grad():
        assert torch.equal(fresh.baseline()(x), net.baseline()(x))


@pytest.mark.parametrize("name,args", ZOO[:3])
def test_segment_graphs_chain_to_forward(name, args):
    c, s = PAPER_INPUT[name]
    net = _net(name, args, c, s)
    k = net.num_exits
    x = torch.randn(3, c, s, s)
    with torch.no_grad():
        outs = net(x)
        for keep in (list(range(k)), [k - 1], [0, k - 1]):   # every exit, all fused, a side exit fused away
            f = x
            graphs = segment_graphs(net, keep, classes=outs[0].shape[1])
            assert len(graphs) == len(keep)
            for g, j in zip(graphs[:-1], keep):
                f, logits, _ = g.eval()(f)
                assert torch.equal(logits, outs[j])
            logits, ent = graphs[-1].eval()(f)
            assert torch.equal(logits, outs[-1]) and ent.shape == (3,)


def test_segment_plan_and_fused_costs():
    assert kept_exits(3, [0.0, 0.2]) == [1, 2]
    assert kept_exits(3, [0.0, 0.2], prune=False) == [0, 1, 2]
    assert kept_exits(3, None) == [0, 1, 2]
    # a kept exit's segment carries the stages fused into it plus its own head
    assert fused_costs([1, 2, 4], [10, 20, 40], [1, 2]) == [1 + 2 + 20, 4 + 40]
    assert fused_costs([1, 2, 4], [10, 20, 40], [0, 1, 2]) == [11, 22, 44]
    net = _net("b-lenet", {}, 1, 28)
    for keep in ([0], [1, 0], [-1, 1], [0, 0, 1], []):
        with pytest.raises(EdgeBranchyError, match="does not fit"):
            segment_graphs(net, keep, classes=10)


def test_branchynet_needs_matching_stages_and_exits():
    with pytest.raises(EdgeBranchyError):
        BranchyNet([torch.nn.Identity()], [])
    with pytest.raises(EdgeBranchyError):
        BranchyNet([], [])
