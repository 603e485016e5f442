"""The in-graph entropy stays finite however the graph is imported (DESIGN.md, Segment): through ONNX
Runtime in FP32 and FP16, and after TensorRT's import of LogSoftmax as Softmax then Log."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trt_double.onnx_import import trt_import

from edgebranchy.export.onnx import _export
from edgebranchy.models.graphs import SegmentGraph

#: logit rows with gaps far beyond what exp() keeps in FP16 (~17) and FP32 (~104)
EXTREME = np.array([[0.0, 30.0, -30.0, 5.0], [200.0, -200.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0],
                    [60.0, 59.0, -60.0, 0.0], [-3.0, 40.0, 40.0, 12.0]], dtype=np.float32)


def reference_entropy(z: np.ndarray, normalize: bool) -> np.ndarray:
    z = z.astype(np.float64)
    zs = z - z.max(1, keepdims=True)
    p = np.exp(zs) / np.exp(zs).sum(1, keepdims=True)
    h = -(p * np.where(p > 0, np.log(np.where(p > 0, p, 1)), 0)).sum(1)
    return h / np.log(z.shape[1]) if normalize else h


def _graph(normalize: bool, half: bool) -> bytes:
    head = nn.Identity()
    seg = SegmentGraph(nn.Identity(), head, last=True, normalize=normalize, temperature=1.0, classes=4, half=half)
    return _export(seg.eval(), torch.from_numpy(EXTREME), ["logits", "entropy"])


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(["entropy"], {"x": x})[0]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("imported", ["onnxruntime", "tensorrt-fp32", "tensorrt-fp16"])
def test_entropy_is_finite_and_right_for_extreme_logits(normalize, imported):
    model = _graph(normalize, half=False)
    if imported != "onnxruntime":
        model = trt_import(model, fp16=imported.endswith("fp16"))
    got = _run(model, EXTREME)
    assert np.isfinite(got).all(), f"{imported}: entropy {got}"
    tol = 2e-2 if imported.endswith("fp16") else 1e-4
    np.testing.assert_allclose(got, reference_entropy(EXTREME, normalize), atol=tol)


def test_fp16_graph_entropy_is_finite():
    """The artifact's own FP16 graph (trunk in half precision), run in FP16 as TensorRT's builder may."""
    model = trt_import(_graph(False, half=True), fp16=True)
    got = _run(model, EXTREME)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, reference_entropy(EXTREME, False), atol=2e-2)


def test_the_decomposition_really_exposes_log_of_zero():
    """The check above can fail: log(softmax) of these logits has -inf entries once imported."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("entropy", onnx.TensorProto.FLOAT, [None, 4])
    g = helper.make_graph([helper.make_node("LogSoftmax", ["x"], ["entropy"], axis=1)], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert np.isfinite(_run(m, EXTREME)).all()
    assert np.isneginf(_run(trt_import(m), EXTREME)).any()
