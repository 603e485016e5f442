"""The single early-exit graph on TensorRT (issue 23 item 2), against the strict double: offered from 10.0 (which
imports `If`), never built on 8.5/8.6 (whose `If` importer loses branch outputs, and 8.5 has no IsInf), the host
synchronisation inside `If` stated where the form is chosen, thresholds bound to the engine."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from trt_double import assert_clean, install

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.tensorrt import TensorRTBackend
from edgebranchy.runtime.runner import EarlyExitRunner
from edgebranchy.tensorrt.build import build_engines

SETTINGS = {"precision": "fp32", "workspace_mb": 64, "builder_optimization_level": 3, "max_batch": 8,
            "dla_core": -1, "gpu_fallback": False}


@pytest.fixture
def trt_settings():
    return SETTINGS


def test_offered_from_10_with_the_host_sync_stated_and_the_answers_of_onnx_runtime(double, art, synthetic_test):
    x = np.ascontiguousarray(synthetic_test[1][:12], dtype=np.float32)
    new = not double.state.version.startswith("8.")
    rec = next(iter(art.manifest["tensorrt"].values()))
    assert (rec["single_graph"]["engine"] == "single") is new and ("single" in rec["files"]) is new
    if not new:
        assert "If` importer" in rec["single_graph"]["reason"]
        assert not any(h.get("fp32_layers") is None for h in double.builds)  # nothing with `If` was parsed
    with TensorRTBackend(art) as b:
        assert b.supports_single_graph is new
        runner = EarlyExitRunner(art, b, form="auto")
        assert "tensorrt single graph" in runner.form_reason
        assert ("copies each `If` condition to the host" in runner.form_reason) is new
        assert b.describe()["single_graph"] is new
        if not new:
            with pytest.raises(EdgeBranchyError, match="does not run the single early-exit graph"):
                EarlyExitRunner(art, b, form="single-graph")
            return
        one = EarlyExitRunner(art, b, form="single-graph")
        ref = EarlyExitRunner(art, "onnxruntime", form="single-graph")
        seg = EarlyExitRunner(art, "onnxruntime", form="segments")
        for i in range(len(x)):
            got, want, chain = one.predict(x[i:i + 1], True), ref.predict(x[i:i + 1], True), seg.predict(x[i:i + 1])
            assert (got.labels[0], got.exits[0]) == (want.labels[0], want.exits[0]) == (chain.labels[0],
                                                                                          chain.exits[0])
            np.testing.assert_allclose(got.logits, want.logits, rtol=1e-5, atol=1e-5)
        rec_ = runner.choose_form(x[:4], rounds=1)
        assert rec_["choice"] in ("segments", "single-graph") and "copies each `If`" in runner.form_reason


def test_the_engine_keeps_its_thresholds(monkeypatch, tiny_artifact, tmp_path):
    """An engine's thresholds are constants: other ones are refused, and an artifact calibrated after the build
    is not offered the single graph until the engines are rebuilt."""
    d = install(monkeypatch, "10.3.0")
    shutil.copytree(tiny_artifact, tmp_path / "art")
    build_engines(tmp_path / "art", SETTINGS, log=lambda s: None)
    art = Artifact.load(tmp_path / "art")
    with TensorRTBackend(art) as b:
        runner = EarlyExitRunner(art, b, form="single-graph")
        with pytest.raises(EdgeBranchyError, match="thresholds its engine was built with"):
            runner.thresholds = [t * 0.5 for t in art.thresholds]
    exits = [{**e, "threshold": e["threshold"] * 0.5} if e["threshold"] is not None else e
             for e in art.manifest["exits"]]
    art.add_files([], {"exits": exits})
    moved = Artifact.load(tmp_path / "art")
    with TensorRTBackend(moved) as b:
        assert b.supports_single_graph is False and "holds the thresholds single.onnx" in b.single_graph_note
        assert "re-export the single graph" in EarlyExitRunner(moved, b).form_reason
    assert_clean(d)
