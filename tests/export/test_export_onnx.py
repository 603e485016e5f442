"""ONNX export: per-segment graphs match PyTorch, the manifest, FP16 graphs, simplification record, atomicity."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.export.onnx import export_checkpoint
from edgebranchy.exits.entropy import entropy
from edgebranchy.models.checkpoint import load_checkpoint


def _sess(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_segments_match_pytorch(tiny_artifact, tiny_calibrated, synthetic_test):
    _, x, _ = synthetic_test
    x = x[100:164]  # not the samples the export checked itself
    art = Artifact.load(tiny_artifact)
    net, base = load_checkpoint(tiny_calibrated).build()
    h_onnx, h_torch = x, torch.from_numpy(x)
    for k in range(art.num_exits):
        path = art.segment_file(k)
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        outs = {o.name: v for o, v in zip(_sess(path).get_outputs(), _sess(path).run(None, {"x": h_onnx}))}
        with torch.no_grad():
            h_torch = net.stages[k](h_torch)
            logits = net.exits[k](h_torch).numpy()
        np.testing.assert_allclose(outs["logits"], logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(outs["entropy"], entropy(logits), rtol=1e-4, atol=1e-5)
        if k < art.num_exits - 1:
            np.testing.assert_allclose(outs["features"], h_torch.numpy(), rtol=1e-4, atol=1e-4)
            h_onnx = outs["features"]
    with torch.no_grad():
        ref = base(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_sess(art.baseline_file()).run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)


def test_dynamic_batch(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    s = _sess(Artifact.load(tiny_artifact).segment_file(0))
    for n in (1, 3, 17):
        assert s.run(None, {"x": x[:n]})[-1].shape == (n,)


def test_manifest_contents(tiny_artifact, tiny_calibrated):
    m = json.loads((tiny_artifact / "manifest.json").read_text())
    assert m["schema"] == "edgebranchy.artifact" and m["schema_version"] == 1
    assert m["input"]["shape"] == [1, 28, 28] and len(m["input"]["mean"]) == 1
    assert len(m["classes"]) == 10 and m["entropy"]["unit"] == "nats"
    cfg = load_checkpoint(tiny_calibrated).config
    assert m["exits"][0]["threshold"] == pytest.approx(cfg["calibration"]["thresholds"][0])
    assert m["exits"][-1]["threshold"] is None
    for seg in m["segments"]:
        assert seg["max_abs_diff"] < 1e-3 and seg["max_abs_diff_fp16"] < 5e-2
        assert seg["simplified"] is True and seg["simplify_error"] is None
        assert seg["fp16_file"] in m["files"]
    assert set(m["files"]) == {"segments/seg0.onnx", "segments/seg1.onnx", "segments/seg0.fp16.onnx",
                               "segments/seg1.fp16.onnx", "baseline.onnx", "baseline.fp16.onnx", "single.onnx"}
    assert m["export"]["versions"]["onnx"] and m["export"]["opset"] == 17


def test_fp16_graphs_chain(tiny_artifact, synthetic_test):
    """fp32 at the host boundary, fp16 features between segments; answers close to fp32."""
    _, x, _ = synthetic_test
    art = Artifact.load(tiny_artifact)
    s0, s1 = _sess(art.segment_file(0, "fp16")), _sess(art.segment_file(1, "fp16"))
    assert s0.get_inputs()[0].type == "tensor(float)" and s1.get_inputs()[0].type == "tensor(float16)"
    f, logits0, e0 = s0.run(["features", "logits", "entropy"], {"x": x[:32]})
    assert f.dtype == np.float16 and logits0.dtype == np.float32 and e0.dtype == np.float32
    ref = _sess(art.segment_file(0)).run(["logits"], {"x": x[:32]})[0]
    np.testing.assert_allclose(logits0, ref, atol=5e-2 * max(1.0, np.abs(ref).max()))
    assert s1.run(["logits"], {"x": f})[0].shape == (32, 10)


def test_simplifier_failure_is_recorded(tiny_calibrated, tmp_path, monkeypatch):
    import onnxsim

    def broken(model, *a, **k):
        raise RuntimeError("simulated onnxsim crash")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    messages = []
    out = export_checkpoint(tiny_calibrated, tmp_path / "a", log=messages.append)
    m = json.loads((out / "manifest.json").read_text())
    assert all(s["simplified"] is False and "simulated onnxsim crash" in s["simplify_error"] for s in m["segments"])
    assert any("onnxsim failed" in msg for msg in messages)
    Artifact.load(out)  # still a valid artifact, with the unsimplified graphs


def test_export_fails_above_tolerance_and_leaves_nothing(tiny_calibrated, tmp_path, monkeypatch):
    import edgebranchy.export.onnx as exp

    monkeypatch.setattr(exp, "TOL", {"fp32": -1.0, "fp16": -1.0})
    with pytest.raises(EdgeBranchyError, match="differs from PyTorch"):
        export_checkpoint(tiny_calibrated, tmp_path / "bad", log=lambda s: None)
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


def test_existing_artifact_needs_force(tiny_calibrated, tmp_path):
    out = export_checkpoint(tiny_calibrated, tmp_path / "a", log=lambda s: None)
    with pytest.raises(EdgeBranchyError, match="pass `force`"):  # the library names the setting; the CLI --force
        export_checkpoint(tiny_calibrated, out, log=lambda s: None)
    export_checkpoint(tiny_calibrated, out, force=True, log=lambda s: None)
    Artifact.load(out)


def test_export_rejects_non_checkpoint(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(EdgeBranchyError, match="checkpoint"):
        export_checkpoint(bad, tmp_path / "a", log=lambda s: None)
