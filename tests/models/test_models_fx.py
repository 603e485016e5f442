"""from_model: split any torch.fx-traceable model at named nodes (skip tensors cross the split)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from eb_fx_models import LongSkip, TinyMobileNet, TinyResNet, Untraceable, ViewNet
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models import BranchyNet, from_model
from edgebranchy.models.fx import MainHead, Stage, node_names


def _exact_baseline(net: BranchyNet, model: nn.Module, shape, n: int = 3) -> list[torch.Tensor]:
    net.eval()
    model.eval()
    torch.manual_seed(5)
    x = torch.randn(n, *shape)
    with torch.no_grad():
        outs = net(x)
        ref = model(x)
        assert torch.equal(outs[-1], ref)            # the main exit is the model, bit for bit
        assert torch.equal(net.baseline()(x), ref)
    return outs


def test_resnet_split_inside_a_block_passes_the_skip_tensor():
    torch.manual_seed(0)
    model = TinyResNet(3, 4)
    net = from_model(model, ["layer1.1.relu", "layer2"], (3, 16, 16), 4)
    outs = _exact_baseline(net, model, (3, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(3, 4)] * 3
    assert all(isinstance(s, Stage) for s in net.stages)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        f0 = net.stages[0].eval()(x)
        f1 = net.stages[1].eval()(f0)
    # inside layer1.1: the block's input (the skip) crosses beside the main tensor
    assert isinstance(f0, tuple) and len(f0) == 2
    assert [tuple(t.shape) for t in f0] == [(2, 8, 16, 16), (2, 8, 16, 16)]
    assert isinstance(net.exits[0], MainHead)
    # after layer2 (a module path: its last node): one tensor
    assert isinstance(f1, torch.Tensor) and tuple(f1.shape) == (2, 16, 8, 8)
    assert not isinstance(net.exits[1], MainHead)
    assert isinstance(net.exits[-1], nn.Identity)


def test_stages_share_the_models_modules_and_keys_map_back():
    model = TinyResNet(3, 4)
    net = from_model(model, ["layer1.1.relu", "layer2"], (3, 16, 16), 4)
    assert net.stages[0].conv1 is model.conv1
    assert net.stages[2].fc is model.fc
    own = set(model.state_dict())
    main = {k.split(".", 2)[2] for k in net.main_state_dict() if k.startswith("stages.")}
    assert main == own  # every weight of the model, under stages.K.<its own name>


def test_mobilenet_depthwise_and_inverted_residuals():
    torch.manual_seed(1)
    model = TinyMobileNet(3, 5)
    assert any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())
    names = node_names(model)
    assert "features.1.add" in names and "classifier.3" in names
    net = from_model(model, ["features.1.conv.5", "features.2"], (3, 16, 16), 5)
    outs = _exact_baseline(net, model, (3, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(3, 5)] * 3
    with torch.no_grad():
        f0 = net.stages[0].eval()(torch.randn(1, 3, 16, 16))
    assert isinstance(f0, tuple) and len(f0) == 2  # the residual's input crosses


def test_node_names_lists_every_name_from_model_accepts():
    """Module paths (layer1, layer2.0, a downsample Sequential) are listed after the last node inside them."""
    model = TinyResNet(3, 4)
    names = node_names(model)
    assert names[names.index("layer1.1.relu_1") + 1:][:2] == ["layer1.1", "layer1"]
    assert names[names.index("layer2.0.downsample.1") + 1] == "layer2.0.downsample"
    assert len(names) == len(set(names)) and names[-1] == "fc"
    for n in names[:-1]:
        net = from_model(model, [n], (3, 16, 16), 4)
        assert net.num_exits == 2
    with pytest.raises(EdgeBranchyError, match="model's output"):  # listed, but nothing would follow it
        from_model(model, ["fc"], (3, 16, 16), 4)


def test_flatten_written_as_view_before_the_classifier():
    torch.manual_seed(2)
    model = ViewNet(1, 3)
    assert "view" in node_names(model)
    net = from_model(model, ["conv2"], (1, 16, 16), 3)
    _exact_baseline(net, model, (1, 16, 16))
    # a split on the flat features gets a Linear head
    net2 = from_model(model, ["view"], (1, 16, 16), 3)
    assert isinstance(net2.exits[0], nn.Linear) and net2.exits[0].in_features == 256
    _exact_baseline(net2, model, (1, 16, 16))


def test_a_tensor_read_after_two_splits_passes_through_the_middle_stage():
    torch.manual_seed(3)
    model = LongSkip(3)
    net = from_model(model, ["relu", "relu_1"], (3, 8, 8), 3)
    _exact_baseline(net, model, (3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        f0 = net.stages[0](x)
        f1 = net.stages[1](f0)
    s = torch.relu(model.stem(x))
    assert torch.equal(f0, s)                      # the stem output is the main tensor of split 0
    assert isinstance(f1, tuple) and len(f1) == 2 and torch.equal(f1[1], s)  # ... and still crosses split 1


def test_joint_training_step_through_skip_splits_and_inplace_ops():
    """The head reads a tensor that a later in-place ReLU would overwrite: the stage must not write into it."""
    torch.manual_seed(4)
    model = TinyResNet(3, 4)
    net = from_model(model, ["layer1.0.add", "layer2.0.bn2"], (3, 16, 16), 4)
    net.train()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    loss = sum(nn.functional.cross_entropy(o, y) for o in net(x))
    loss.backward()
    assert model.conv1.weight.grad is not None and model.fc.weight.grad is not None
    assert all(p.grad is not None for p in net.exits[0].parameters())
    _exact_baseline(net, model, (3, 16, 16))


def test_stage_copies_and_half():
    net = from_model(TinyResNet(3, 4), ["layer1.1.relu"], (3, 16, 16), 4).eval()
    s = copy.deepcopy(net.stages[1]).half()
    f = tuple(t.half() for t in net.stages[0](torch.randn(1, 3, 16, 16)))
    with torch.no_grad():
        assert s(f).dtype == torch.float16
    assert len(net.stages[0]) == sum(1 for n in net.stages[0].graph.nodes if n.op == "call_module")


def test_custom_head_factory_gets_the_main_tensor_shape():
    calls = []

    def head(shape, classes):
        calls.append(tuple(shape))
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(classes))

    net = from_model(TinyResNet(3, 4), ["layer1.1.relu", "layer2"], (3, 16, 16), 4, head_factory=head)
    assert calls == [(8, 16, 16), (16, 8, 8)]
    with torch.no_grad():
        assert all(o.shape == (2, 4) for o in net.eval()(torch.randn(2, 3, 16, 16)))


@pytest.mark.parametrize("points,match", [
    ([], "non-empty"),
    (["layer9"], "not a node or module"),
    (["layer1.1.rel"], "close: layer1.1.relu"),
    (["layer2", "layer1"], "increasing"),
    (["layer1", "layer1.1.relu_1"], "increasing"),  # the same node twice (module path, node name)
    (["x"], "model's input"),
    (["fc"], "model's output"),
    ([3], "node or module names"),
])
def test_bad_split_points(points, match):
    with pytest.raises(EdgeBranchyError, match=match):
        from_model(TinyResNet(3, 4), points, (3, 16, 16), 4)


def test_model_must_end_with_its_classifier():
    with pytest.raises(EdgeBranchyError, match="end with its classifier"):
        from_model(TinyResNet(3, 4), ["layer1"], (3, 16, 16), 10)


def test_wrong_input_shape_is_a_user_error():
    with pytest.raises(EdgeBranchyError, match="cannot run on an input of shape"):
        from_model(TinyResNet(3, 4), ["layer1"], (1, 16, 16), 4)


def test_untraceable_model_names_the_module_and_the_way_out():
    with pytest.raises(EdgeBranchyError) as e:
        from_model(Untraceable(), ["stem"], (3, 8, 8), 3)
    msg = str(e.value)
    assert "body.1" in msg and "DataDependent" in msg           # the innermost module being traced
    assert "if x.sum() > 0" in msg and "eb_fx_models.py" in msg  # the line that cannot be traced
    assert "leaf_modules=['body.1']" in msg and "from_sequential" in msg
    assert "\n" not in msg


def test_leaf_modules_make_it_traceable():
    torch.manual_seed(6)
    model = Untraceable()
    for leaf in (["body.1"], [type(model.body[1])]):
        net = from_model(model, ["body"], (3, 8, 8), 3, leaf_modules=leaf)
        _exact_baseline(net, model, (3, 8, 8))
    with pytest.raises(EdgeBranchyError, match="not a node or module"):
        from_model(model, ["body.1.conv"], (3, 8, 8), 3, leaf_modules=["body.1"])  # inside a leaf
    with pytest.raises(EdgeBranchyError, match="not a submodule"):
        from_model(model, ["body"], (3, 8, 8), 3, leaf_modules=["nope"])


def test_not_a_module():
    with pytest.raises(EdgeBranchyError, match="nn.Module"):
        from_model(lambda x: x, ["a"], (3, 8, 8), 3)


# -- torchvision / timm models where installed (no weights are downloaded) ------------------------

def test_torchvision_resnet18_and_mobilenet():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed here")
    torch.manual_seed(0)
    r = tv.models.resnet18(weights=None, num_classes=7)
    _exact_baseline(from_model(r, ["layer1", "layer3.1.relu_1"], (3, 64, 64), 7), r, (3, 64, 64), n=2)
    m = tv.models.mobilenet_v3_small(weights=None, num_classes=7)
    _exact_baseline(from_model(m, ["features.3", "features.8"], (3, 64, 64), 7), m, (3, 64, 64), n=2)


def test_timm_resnet():
    timm = pytest.importorskip("timm", reason="timm is not installed here")
    torch.manual_seed(0)
    m = timm.create_model("resnet18", pretrained=False, num_classes=5)
    _exact_baseline(from_model(m, ["layer2"], (3, 64, 64), 5), m, (3, 64, 64), n=2)
