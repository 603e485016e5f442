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


SETTINGS = {"precision": "fp32", "workspace_mb": 64, "builder_optimization_level": 3, "max_batch": 64,
            "dla_core": -1, "gpu_fallback": False}


@pytest.mark.parametrize("version", ["8.5.2", "10.3.0"])
def test_tensorrt_runs_multi_tensor_splits_as_onnxruntime_does(skip_artifact, tmp_path, monkeypatch, version):
    """Issue 24: segment 1 takes two tensors (the split is inside a residual block). Its engine has two inputs,
    each with min/opt/max over the same batch range (the strict double refuses differing ranges of the
    batch dimension both are named after, and unequal batches at run time), every crossing tensor has its gather
    engine, and the runner's answers (compaction, batch 1, the pipeline) are ONNX Runtime's."""
    import shutil

    from trt_double import assert_clean, install

    from edgebranchy.runtime.runner import EarlyExitRunner
    from edgebranchy.tensorrt.build import build_engines

    d = install(monkeypatch, version)
    _, src = skip_artifact
    art = tmp_path / "art"
    shutil.copytree(src, art)
    rec = build_engines(art, SETTINGS, log=lambda s: None)
    seg1 = rec["profiles"]["seg1"]
    assert set(seg1["inputs"]) == {"x.0", "x.1"}
    assert {(tuple(r["min"][:1]), tuple(r["opt"][:1]), tuple(r["max"][:1])) for r in seg1["inputs"].values()} \
        == {((1,), (1,), (64,))}
    assert {"gather0.0", "gather0.1", "gather1", "gather_logits"} <= set(rec["files"])
    two = [b for b in d.builds if set(b["profile"]) == {"x.0", "x.1"}]
    assert two and all(p["x.0"] == [[1, *p["x.0"][0][1:]], [1, *p["x.0"][1][1:]], [64, *p["x.0"][2][1:]]]
                       for b in two for p in b["profiles"])
    x = _x()
    with EarlyExitRunner(art) as ref, EarlyExitRunner(art, backend="tensorrt") as r:
        e0 = ref.backend.launch(0, x).entropy()
        for ts in ([float(np.median(e0)), 0.0], [0.0, 0.6], [float(np.median(e0)), 0.6]):
            ref.thresholds = r.thresholds = ts
            want, got = ref.predict(x, return_logits=True), r.predict(x, return_logits=True)
            assert (got.exits == want.exits).all() and (got.labels == want.labels).all()
            np.testing.assert_allclose(got.logits, want.logits, rtol=1e-4, atol=1e-4)
            assert 0 < (got.exits == 0).sum() < len(x) or ts[0] == 0.0
        one = [int(r.predict(x[i:i + 1]).exits[0]) for i in range(8)]
        piped = np.concatenate([q.exits for q in r.predict_stream([x[:13], x[13:]], pipelined=True)])
    assert one == want.exits[:8].tolist() and (piped == want.exits).all()
    assert_clean(d)


def test_single_graph_chains_every_tensor_crossing_a_split(skip_artifact):
    """export writes single.onnx for a split inside a block (each crossing tensor feeds the next segment's
    input of the same index); its exits and labels are the per-segment runner's at batch 1."""
    from edgebranchy.runtime.runner import EarlyExitRunner

    _, art = skip_artifact
    a = Artifact.load(art)
    assert a.single_graph is not None and a.single_graph["check"]["samples"] > 0
    x = _x(24)
    with EarlyExitRunner(art, form="segments") as seg, EarlyExitRunner(art, form="single-graph") as one:
        e0 = seg.backend.launch(0, x).entropy()
        seg.thresholds = one.thresholds = [float(np.median(e0)), 0.6]
        want = [seg.predict(x[i:i + 1]) for i in range(len(x))]
        got = [one.predict(x[i:i + 1]) for i in range(len(x))]
    assert [int(p.exits[0]) for p in got] == [int(p.exits[0]) for p in want]
    assert [int(p.labels[0]) for p in got] == [int(p.labels[0]) for p in want]
    assert len({int(p.exits[0]) for p in want}) >= 2


def test_the_double_refuses_inputs_whose_shared_batch_ranges_differ(skip_artifact, tmp_path, monkeypatch):
    """The strict double's rule the build relies on: x.0 and x.1 share the dimension name N (ONNX import), so a
    profile giving them different batch ranges is refused (HI8.5.2:490: same name, equal at run time)."""
    import shutil

    from trt_double import StrictDoubleError, install

    from edgebranchy.tensorrt import build

    install(monkeypatch, "10.3.0")
    _, src = skip_artifact
    art = tmp_path / "art"
    shutil.copytree(src, art)
    orig = build._profiles

    def skewed(jobs, s, plan):
        out = orig(jobs, s, plan)
        out["seg1"]["inputs"]["x.1"]["max"][0] = 32
        return out

    monkeypatch.setattr(build, "_profiles", skewed)
    with pytest.raises(StrictDoubleError, match="dimension 'N'"):
        build.build_engines(art, SETTINGS, log=lambda s: None)
