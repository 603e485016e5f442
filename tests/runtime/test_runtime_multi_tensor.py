"""Segments that take several tensors (a from_model split inside a residual block): export, both backends,
compaction of every tensor, the pipelined path, and the manifest checks on the recorded names."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from edgebranchy.artifact.manifest import Artifact, segment_io_names
from edgebranchy.errors import EdgeBranchyError


@pytest.fixture(autouse=True)
def _trust(monkeypatch):
    """The torch backend rebuilds the model from its module:function factory (only within these tests)."""
    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "eb_fx_models")


@pytest.fixture(scope="module")
def skip_artifact(tmp_path_factory):
    """TinyResNet (1 channel, 28x28 synthetic data) split inside layer1.1: segment 1 takes two tensors."""
    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.train.trainer import TrainConfig, Trainer

    d = tmp_path_factory.mktemp("multi")
    cfg = TrainConfig(model="eb_fx_models:resnet_branchy", dataset="synthetic", epochs=1, baseline_epochs=0,
                      max_steps=2, batch_size=32, limit=300)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "eb_fx_models")
        Trainer(cfg, d / "m.pt", progress=False).run()
        art = export_checkpoint(d / "m.pt", d / "art", prune=False, check_samples=16, log=lambda s: None)
    return d / "m.pt", art


def test_segment_names_are_recorded(skip_artifact):
    _, art = skip_artifact
    a = Artifact.load(art)
    assert a.segment_inputs(0) == ["x"] and a.segment_outputs(0)[:2] == ["features.0", "features.1"]
    assert a.segment_inputs(1) == ["x.0", "x.1"] and a.segment_inputs(2) == ["x"]
    assert segment_io_names(1, 1, False) == (["x"], ["features", "logits", "entropy"])


def _x(n: int = 40):
    from edgebranchy.data import load_dataset

    b = load_dataset("synthetic")
    return b.test.x_float(b.norm, np.arange(n))


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_compaction_gathers_every_tensor(skip_artifact, backend):
    from edgebranchy.runtime.runner import EarlyExitRunner

    ck, art = skip_artifact
    x = _x()
    with EarlyExitRunner(art, backend=backend, thresholds=[0.0, 0.0]) as r:
        full = r.predict(x, return_logits=True)          # everyone to the last exit
        seg = r.backend.launch(0, r.backend.to_device(x))
        e0 = seg.entropy()
        t0 = float(np.median(e0))
        r.thresholds = [t0, 0.0]                          # half leave at exit 0, the rest are compacted
        p = r.predict(x, return_logits=True)
        one = [r.predict(x[i:i + 1], return_logits=True) for i in range(len(x))]
        piped = np.concatenate([q.labels for q in r.predict_stream([x[:13], x[13:]], pipelined=True)])
        bound = r.backend.describe().get("batch1_iobinding")
    assert 0 < (p.exits == 0).sum() < len(x)
    late = p.exits == 2
    np.testing.assert_allclose(p.logits[late], full.logits[late], rtol=1e-5, atol=1e-5)
    assert [int(o.exits[0]) for o in one] == p.exits.tolist()
    assert (piped == p.labels).all()
    if backend == "onnxruntime":  # several tensors cross the split: batch-1 calls are plain runs, not bound
        assert bound is False


def test_onnx_matches_the_torch_backend(skip_artifact):
    from edgebranchy.runtime.runner import EarlyExitRunner

    _, art = skip_artifact
    x = _x()
    with EarlyExitRunner(art) as a, EarlyExitRunner(art, backend="torch") as b:
        for k in range(3):
            a.thresholds = b.thresholds = [0.6 if j == k else 0.0 for j in range(2)]
            pa, pb = a.predict(x, return_logits=True), b.predict(x, return_logits=True)
            assert (pa.exits == pb.exits).all()
            np.testing.assert_allclose(pa.logits, pb.logits, rtol=1e-4, atol=1e-4)


def test_manifest_refuses_inconsistent_names(skip_artifact, tmp_path):
    import json
    import shutil

    _, art = skip_artifact
    m = json.loads((art / "manifest.json").read_text())
    for mutate, match in [
        (lambda s: s[0].update(inputs=["x.0", "x.1"]), "segment 0 must take the image alone"),
        (lambda s: s[1].update(inputs=["x"]), "segment 0 passes on 2 tensor"),
        (lambda s: s[1].update(inputs="x.0"), "must be lists of names"),
    ]:
        bad = copy.deepcopy(m)
        mutate(bad["segments"])
        d = tmp_path / f"a{len(list(tmp_path.iterdir()))}"
        shutil.copytree(art, d)
        (d / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(EdgeBranchyError, match=match):
            Artifact.load(d)


def test_tensorrt_refuses_multi_tensor_splits(skip_artifact):
    from edgebranchy.runtime.backends.tensorrt import TensorRTBackend

    _, art = skip_artifact
    with pytest.raises(EdgeBranchyError, match="single-tensor splits only"):
        TensorRTBackend(Artifact.load(art))
