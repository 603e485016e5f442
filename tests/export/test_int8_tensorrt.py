"""INT8 engines from the artifact's Q/DQ graphs on the strict TensorRT double: explicit quantization per version
(BuilderFlag.INT8 on 8.5-9.x, strongly typed from 10), the double running the Q/DQ graph through ONNX Runtime,
and a corrupted scale caught by the doctor."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from trt_double import VERSIONS, assert_clean, fake_trt, install

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.entropy import entropy
from edgebranchy.tensorrt import compat
from edgebranchy.tensorrt.build import build_engines
from edgebranchy.util.files import sha256_file

GPU = ("Orin (nvgpu)", (8, 7))
SETTINGS = {"precision": "int8", "workspace_mb": 512, "builder_optimization_level": 3, "max_batch": 16,
            "dla_core": -1, "gpu_fallback": False}


@pytest.fixture
def art(tiny_int8_artifact, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(tiny_int8_artifact, dst)
    return dst


def _build(art, **kw):
    return build_engines(art, SETTINGS, log=lambda s: None, **kw)  # the GPU through pycuda, as the backend


@pytest.mark.parametrize("v,mode,typed,flag", [
    ((8, 5, 2), "builder-flag", False, True),
    ((8, 6, 1), "builder-flag", False, True),
    ((9, 3, 0), "builder-flag", False, True),
    ((10, 3, 0), "strongly-typed-graph", True, False),
    ((11, 4, 0), "strongly-typed-graph", True, False),
])
def test_int8_is_explicit_quantization_on_every_version(v, mode, typed, flag):
    p = compat.plan_build(v, "int8", 3)
    assert (p.precision_mode, p.graph_precision, p.strongly_typed_flag, p.int8_flag, p.fp16_flag) == \
        (mode, "int8", typed, flag, False)
    assert compat.plan_build(v, "int8", 3, dla_core=0).dla_core == 0   # the DLA runs INT8
    assert not compat.gpu_plan(p).int8_flag


def _ort(path, x):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})


@pytest.mark.parametrize("version", VERSIONS)
def test_int8_engines_run_the_tensorrt_form_of_the_qdq_graphs(monkeypatch, art, synthetic_test, version):
    from edgebranchy.runtime.backends.tensorrt import TensorRTBackend

    d = install(monkeypatch, version, gpu=GPU)
    r = _build(art)
    assert r["precision"] == "int8" and r["graphs"]["seg0"] == "segments/seg0.int8.tensorrt.onnx"
    assert r["graphs"]["baseline"] == "baseline.int8.tensorrt.onnx" and "single" not in r["files"]
    header = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    assert header["precision"] == "int8"
    assert header["mode"] == ("builder-flag" if version.startswith("8.") else "strongly-typed")
    a = Artifact.load(art)
    x = np.ascontiguousarray(synthetic_test[1][:16], dtype=np.float32)
    temps = a.temperatures or [1.0] * 8
    with TensorRTBackend(a, {"precision": "int8"}) as b:
        h, feats = b.to_device(x), x
        for k in range(a.num_exits):
            launch = b.launch(k, h, 0)
            logits, ent = b.to_host(launch.logits), launch.entropy()
            want = dict(zip(a.segment_outputs(k), _ort(a.segment_file(k, "int8", tensorrt=True), feats)))
            np.testing.assert_allclose(logits, want["logits"], rtol=1e-5, atol=1e-5)
            t = temps[a.model_exits[k]]
            np.testing.assert_allclose(ent, entropy(logits, normalize=a.entropy_normalized, temperature=t),
                                       atol=2e-6)
            h, feats = launch.features, want.get("features")
    assert_clean(d)


@pytest.mark.parametrize("version", ["8.5.2", "8.6.1"])
def test_without_the_int8_flag_tensorrt_8_refuses_the_qdq_graph(monkeypatch, art, version):
    d = install(monkeypatch, version, gpu=GPU)
    real = compat.plan_build
    monkeypatch.setattr(compat, "plan_build", lambda *a, **k: compat.dataclasses.replace(real(*a, **k),
                                                                                        int8_flag=False))
    with pytest.raises(EdgeBranchyError, match="int8 is not configured in the builder"):
        _build(art)
    d.state.violations.clear()


def test_the_onnxruntime_form_is_refused_by_tensorrt(monkeypatch, art):
    """Why the artifact holds two forms: ONNX Runtime's (uint8 activations with zero points, int32 biases) is not
    what TensorRT's Q/DQ layers take."""
    d = install(monkeypatch, "10.3.0", gpu=GPU)
    monkeypatch.setattr(Artifact, "segment_file", lambda self, k, precision="fp32", tensorrt=False:
                        self._file(self.manifest["segments"][k], precision, f"segment {k}", False))
    with pytest.raises(EdgeBranchyError, match="TensorRT cannot parse .*zero point must be 0"):
        _build(art)
    assert_clean(d)


def _corrupt_scale(art, rel: str, factor: float) -> str:
    """Multiply the scale of the first activation Q/DQ pair after the image by `factor`, and record the graph's
    new sha256 as a broken quantizer would have written it. Returns the scale's name."""
    path = art / rel
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] != "x"][0]
    name = q.input[1]
    inits[name].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(inits[name]) * np.float32(factor), name))
    onnx.save(model, str(path))
    m = json.loads((art / "manifest.json").read_text())
    m["files"][rel]["sha256"] = sha256_file(path)
    m["files"][rel]["bytes"] = path.stat().st_size
    (art / "manifest.json").write_text(json.dumps(m))
    return name


def test_a_corrupted_scale_gives_wrong_answers_and_the_doctor_catches_it(monkeypatch, art, tmp_path):
    from edgebranchy.device.doctor_artifact import check_artifact

    d = install(monkeypatch, "10.3.0")
    bad_art = tmp_path / "bad"
    shutil.copytree(art, bad_art)
    good = check_artifact(art, backend="tensorrt", precision="int8", samples=64, batch_size=8, repeats=1,
                          profile="x86-cpu")
    assert good["passed"] and good["arithmetic"] == "int8"
    _corrupt_scale(bad_art, "segments/seg0.int8.tensorrt.onnx", 40.0)
    bad = check_artifact(bad_art, backend="tensorrt", precision="int8", samples=64, batch_size=8, repeats=1,
                         profile="x86-cpu")
    assert not bad["passed"]
    assert bad["exits"][0]["max_abs_logit_diff"] > bad["exits"][0]["logit_tolerance"]
    assert bad["exits"][0]["max_abs_logit_diff"] > 5 * good["exits"][0]["max_abs_logit_diff"]
    assert_clean(d)
