"""from_sequential (bring your own backbone) and the model registry."""
from __future__ import annotations

import sys
import textwrap
from collections import OrderedDict

import pytest
import torch
from torch import nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models import BranchyNet, build_model, default_head, from_sequential, model_names

SHAPE = (1, 12, 12)


def _backbone(named: bool = False, classes: int = 10) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [
        ("conv1", nn.Conv2d(1, 4, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),  # 4x6x6
        ("conv2", nn.Conv2d(4, 6, 3, padding=1)), ("relu2", nn.ReLU()),                           # 6x6x6
        ("flat", nn.Flatten()), ("fc1", nn.Linear(216, 32)), ("relu3", nn.ReLU()),                # 32
        ("fc2", nn.Linear(32, classes)),
    ]
    return nn.Sequential(OrderedDict(layers)) if named else nn.Sequential(*[m for _, m in layers])


def _check(net: BranchyNet, backbone: nn.Sequential, stage_lengths: list[int]) -> None:
    assert [len(s) for s in net.stages] == stage_lengths
    net.eval()
    backbone.eval()
    x = torch.randn(5, *SHAPE)
    with torch.no_grad():
        outs = net(x)
        assert len(outs) == len(stage_lengths) and all(o.shape == (5, 10) for o in outs)
        # the baseline network is the backbone itself, with the same weights
        assert torch.equal(net.baseline()(x), backbone(x))
        assert torch.equal(outs[-1], backbone(x))
    assert isinstance(net.exits[-1], nn.Identity)
    # the stages share the backbone's modules (no copies)
    assert {id(m) for s in net.stages for m in s} == {id(m) for m in backbone}


def test_split_by_index():
    bb = _backbone()
    net = from_sequential(bb, [2, 4], SHAPE, 10)
    _check(net, bb, [3, 2, 4])


def test_split_by_name_in_an_ordered_dict():
    bb = _backbone(named=True)
    net = from_sequential(bb, ["pool1", "relu3"], SHAPE, 10)
    _check(net, bb, [3, 5, 1])
    # the side exit on flat features is a Linear
    assert isinstance(net.exits[1], nn.Linear) and net.exits[1].in_features == 32


def test_split_names_and_indices_agree():
    a = from_sequential(_backbone(named=True), ["pool1", 4], SHAPE, 10)
    b = from_sequential(_backbone(named=True), [2, "relu2"], SHAPE, 10)
    assert [len(s) for s in a.stages] == [len(s) for s in b.stages] == [3, 2, 4]


@pytest.mark.parametrize("points,match", [
    ([], "non-empty"),
    (["nope"], "not a layer"),
    ([8], "out of range"),      # after the classifier: nothing left for the main exit
    ([-1], "out of range"),
    ([99], "out of range"),
    ([4, 2], "increasing"),
    ([2, 2], "increasing"),
    (["pool1", 2], "increasing"),  # the same layer by name and by index
])
def test_bad_split_points(points, match):
    with pytest.raises(EdgeBranchyError, match=match):
        from_sequential(_backbone(named=True), points, SHAPE, 10)


def test_split_after_the_last_layer_by_name_is_refused():
    try:
        net = from_sequential(_backbone(named=True), ["fc2"], SHAPE, 10)
    except EdgeBranchyError:
        return
    raise AssertionError(f"accepted; stage lengths {[len(s) for s in net.stages]}")


def test_backbone_must_be_sequential():
    class Net(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(EdgeBranchyError, match="nn.Sequential"):
        from_sequential(Net(), [0], SHAPE, 10)


@pytest.mark.parametrize("cut", [
    pytest.param(lambda bb: nn.Sequential(*list(bb)[:-1]), id="ends-with-relu-32"),
    pytest.param(lambda bb: nn.Sequential(*list(bb)[:6]), id="ends-with-flatten"),
    pytest.param(lambda bb: nn.Sequential(*list(bb)[:5]), id="ends-with-feature-map"),
])
def test_backbone_must_end_with_its_classifier(cut):
    with pytest.raises(EdgeBranchyError, match="end with its classifier"):
        from_sequential(cut(_backbone()), [2], SHAPE, 10)


def test_classifier_width_must_match_num_classes():
    with pytest.raises(EdgeBranchyError, match="end with its classifier"):
        from_sequential(_backbone(classes=7), [2], SHAPE, 10)


def test_custom_head_factory_is_used():
    calls = []

    def head(shape, classes):
        calls.append((tuple(shape), classes))
        m = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), classes))
        m.made_by_test = True
        return m

    net = from_sequential(_backbone(), [2, 4], SHAPE, 10, head_factory=head)
    assert calls == [((4, 6, 6), 10), ((6, 6, 6), 10)]
    assert all(getattr(e, "made_by_test", False) for e in net.exits[:-1])
    with torch.no_grad():
        assert all(o.shape == (2, 10) for o in net.eval()(torch.randn(2, *SHAPE)))


def test_default_head_shapes():
    with torch.no_grad():
        assert default_head((6, 6, 6), 10)(torch.randn(2, 6, 6, 6)).shape == (2, 10)
        assert default_head((32,), 3)(torch.randn(2, 32)).shape == (2, 3)
    with pytest.raises(EdgeBranchyError):
        default_head((3, 4), 10)


# -- registry ----------------------------------------------------------------------------------

def test_model_names():
    assert model_names() == ["b-alexnet", "b-lenet", "b-resnet"]


@pytest.mark.parametrize("name,args,match", [
    ("b-nope", None, "unknown model"),
    ("lenet", None, "unknown model"),
    ("b-lenet", {"bogus": 1}, "bad arguments"),
    ("b-resnet", {"depth": 19}, "6n"),
    ("no_such_module_xyz:make", None, "cannot import"),
    ("edgebranchy.models.zoo:no_such_function", None, "cannot import"),
    ("edgebranchy.models.zoo.lenet:pool", None, "not a BranchyNet"),  # a callable returning a MaxPool2d
])
def test_build_model_errors(name, args, match):
    with pytest.raises(EdgeBranchyError, match=match):
        build_model(name, args)


def test_build_model_input_too_small_is_a_user_error():
    with pytest.raises(EdgeBranchyError):
        build_model("b-alexnet", {"input_size": 8})


def test_module_function_factory(tmp_path, monkeypatch):
    mod = "eb_test_user_models_4f1c"
    (tmp_path / f"{mod}.py").write_text(textwrap.dedent("""
        from torch import nn
        from edgebranchy.models import from_sequential

        def tiny(num_classes=10, width=4):
            bb = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
                               nn.Linear(width * 8 * 8, num_classes))
            return from_sequential(bb, [1], (1, 8, 8), num_classes)

        def not_a_net(**kw):
            return nn.Linear(2, 2)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, mod, raising=False)
    try:
        net = build_model(f"{mod}:tiny", {"num_classes": 3, "width": 2})
        assert isinstance(net, BranchyNet) and net.num_exits == 2
        with torch.no_grad():
            assert [o.shape for o in net.eval()(torch.randn(2, 1, 8, 8))] == [(2, 3), (2, 3)]
        with pytest.raises(EdgeBranchyError, match="bad arguments"):
            build_model(f"{mod}:tiny", {"depth": 3})
        with pytest.raises(EdgeBranchyError, match="not a BranchyNet"):
            build_model(f"{mod}:not_a_net")
        with pytest.raises(EdgeBranchyError, match="cannot import"):
            build_model(f"{mod}:missing")
    finally:
        sys.modules.pop(mod, None)
