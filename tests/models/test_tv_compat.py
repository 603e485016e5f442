"""edgebranchy.models.tv_compat against torchvision itself: fixtures recorded from torchvision 0.29.1
(tests/models/fixtures/, each with the script that wrote it): the same state-dict keys, shapes, modules and
parameter count, the same logits under the same weights, and every split name meaning the same tensor."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import fx, nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models import from_model
from edgebranchy.models.fx import _resolve, node_names, trace
from edgebranchy.models.tv_compat import mobilenet_v2, resnet18

FIX = Path(__file__).parent / "fixtures"
ARCHS = json.loads((FIX / "torchvision_archs.json").read_text())["models"]
LOGITS = json.loads((FIX / "torchvision_reference_logits.json").read_text())
NODES = json.loads((FIX / "torchvision_nodes.json").read_text())["models"]
MODELS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}


def _ref():
    """The fixtures' generator (ref.py): its synthetic weights and input need only torch and numpy."""
    spec = importlib.util.spec_from_file_location("tv_fixture_ref", FIX / "ref.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _synthetic(name: str) -> nn.Module:
    m = MODELS[name](num_classes=10).eval()
    m.load_state_dict(_ref().synthetic_state(m.state_dict()))
    return m


@pytest.mark.parametrize("name", MODELS)
def test_keys_shapes_modules_and_parameters_are_torchvisions(name):
    rec = ARCHS[name]
    m = MODELS[name](num_classes=10)
    assert [[k, list(v.shape)] for k, v in m.state_dict().items()] == rec["state_dict"]
    assert [[n, type(x).__name__] for n, x in m.named_modules()] == rec["modules"]
    assert sum(p.numel() for p in m.parameters()) == rec["params"]


@pytest.mark.parametrize("name", MODELS)
def test_logits_equal_torchvisions_under_the_same_weights(name):
    m = _synthetic(name)
    with torch.no_grad():
        got = m(_ref().reference_input()).double().numpy()
    want = np.array(LOGITS[name])
    assert got.shape == want.shape == (2, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _node_values(model: nn.Module, x: torch.Tensor):
    """(trace order, node -> edgebranchy name, node -> (shape, sum, sum |v|) when computed)."""
    gm, names = trace(model)
    stats = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                v = out.detach().double()
                stats[n] = (list(v.shape), float(v.sum()), float(v.abs().sum()))
            return out

    with torch.no_grad():
        Recorder(gm).run(x)
    return [n for n in gm.graph.nodes if n.op != "output"], names, stats


@pytest.mark.parametrize("name", MODELS)
def test_every_torchvision_node_name_means_the_same_tensor_here(name):
    """Each name of torchvision's get_graph_node_names resolves (as from_model resolves a split point) to a
    value of the same shape and the same sums as torchvision's node of that name."""
    order, names, stats = _node_values(_synthetic(name), _ref().reference_input())
    rows = NODES[name]["torchvision_nodes"]
    assert [r[0] for r in rows] == ARCHS[name]["eval_nodes"]
    for tv_name, shape, total, absolute in rows:
        got = stats[_resolve(tv_name, order, names)]
        assert got[0] == shape, tv_name
        assert math.isclose(got[2], absolute, rel_tol=1e-4), (tv_name, got, absolute)
        assert abs(got[1] - total) <= 1e-4 * absolute, (tv_name, got, total)


@pytest.mark.parametrize("name", MODELS)
def test_node_names_are_those_edgebranchy_lists_for_torchvisions_model(name):
    names = node_names(MODELS[name](num_classes=10))
    assert names == NODES[name]["edgebranchy_node_names"]
    tv = set(ARCHS[name]["eval_nodes"]) - {"x"}
    assert tv <= set(names)  # every torchvision node name is listed (module paths such as features.0 too)


@pytest.mark.parametrize("name,points,crossing", [
    ("resnet18", ["layer1", "layer2.1.relu", "layer3"], [1, 2, 1]),
    ("mobilenet_v2", ["features.3", "features.6.conv.1", "features.13"], [1, 2, 1]),
])
def test_from_model_splits_at_torchvision_names(name, points, crossing):
    torch.manual_seed(0)
    model = MODELS[name](num_classes=7).eval()
    net = from_model(model, points, (3, 64, 64), 7).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x)[-1], model(x)) and torch.equal(net.baseline()(x), model(x))
        feats = x
        for k, want in enumerate(crossing):
            feats = net.stages[k](feats)
            assert (len(feats) if isinstance(feats, tuple) else 1) == want, points[k]


def test_default_initialisation_is_torchvisions():
    torch.manual_seed(0)
    r, m = resnet18(num_classes=10), mobilenet_v2(num_classes=10)
    for model in (r, m):
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d) and mod.weight.numel() >= 4096:  # Kaiming normal, fan out (as torch
                fan_out = mod.weight.shape[0] * mod.kernel_size[0] * mod.kernel_size[1]  # counts it, groups too)
                assert abs(mod.weight.std().item() / math.sqrt(2 / fan_out) - 1) < 0.1
            if isinstance(mod, nn.BatchNorm2d):
                assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)
    bound = 1 / math.sqrt(512)  # ResNet's fc keeps PyTorch's default uniform initialisation
    assert r.fc.weight.abs().max() <= bound and r.fc.weight.abs().max() > 0.9 * bound
    lin = m.classifier[1]
    assert abs(lin.weight.std().item() - 0.01) < 0.001 and torch.all(lin.bias == 0)
    assert m.classifier[0].p == 0.2


def test_pretrained_weights_are_refused_with_the_way_out():
    with pytest.raises(EdgeBranchyError, match="no pretrained weights.*load a state_dict"):
        resnet18(weights="IMAGENET1K_V1")
