"""EarlyExitRunner on ONNX Runtime against a PyTorch early-exit loop, compaction, pipelining, bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.runtime.runner import EarlyExitRunner


def torch_reference(checkpoint, x, thresholds):
    """The exit rule written plainly over the PyTorch model, one sample at a time."""
    import torch

    from edgebranchy.exits.entropy import entropy
    from edgebranchy.models.checkpoint import load_checkpoint

    net, _ = load_checkpoint(checkpoint).build()
    labels, exits = [], []
    with torch.no_grad():
        for i in range(len(x)):
            h = torch.from_numpy(x[i:i + 1])
            for k in range(net.num_exits):
                h = net.stages[k](h)
                logits = net.exits[k](h).numpy()
                if k == net.num_exits - 1 or entropy(logits)[0] < thresholds[k]:
                    labels.append(int(logits.argmax()))
                    exits.append(k)
                    break
    return np.array(labels), np.array(exits)


@pytest.fixture(scope="module")
def runner(tiny_artifact):
    with EarlyExitRunner(tiny_artifact) as r:
        yield r


def test_matches_pytorch_loop(runner, tiny_calibrated, synthetic_test):
    _, x, y = synthetic_test
    x = x[:200]
    p = runner.predict(x)
    ref_labels, ref_exits = torch_reference(tiny_calibrated, x, runner.thresholds)
    # entropies within float noise of the threshold may flip; there must be (almost) none
    agree = (p.exits == ref_exits).mean()
    assert agree >= 0.99
    same = p.exits == ref_exits
    assert np.array_equal(p.labels[same], ref_labels[same])
    assert 0 < (p.exits == 0).sum() < len(x), "the fixture threshold should split the samples"


def test_compaction_equals_one_at_a_time(runner, synthetic_test):
    _, x, _ = synthetic_test
    x = x[:97]
    batched = runner.predict(x, return_logits=True)
    for i in range(len(x)):
        single = runner.predict(x[i:i + 1], return_logits=True)
        assert single.exits[0] == batched.exits[i]
        assert single.labels[0] == batched.labels[i]
        np.testing.assert_allclose(single.logits[0], batched.logits[i], rtol=1e-4, atol=1e-5)


def test_batch1_answers_are_the_callers_own(tiny_artifact, synthetic_test):
    """The batch-1 path copies its exit ids from prepared arrays: changing one answer changes no other."""
    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact, thresholds=[1e9], form="segments") as r:
        first = r.predict(x[:1])
        assert first.exits.dtype == np.int64 and first.exits.tolist() == [0]
        first.exits[0] = 7
        assert r.predict(x[1:2]).exits.tolist() == [0]


def test_last_exit_always_answers(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact, thresholds=[0.0]) as r:
        p = r.predict(x[:50])
        assert (p.exits == 1).all()
    with EarlyExitRunner(tiny_artifact, thresholds=[1e9]) as r:
        assert (r.predict(x[:50]).exits == 0).all()


def test_pipelined_equals_sequential(runner, synthetic_test):
    _, x, _ = synthetic_test
    batches = [x[i:i + 16] for i in range(0, 200, 16)]
    seq = [runner.predict(b) for b in batches]
    pipe = list(runner.predict_stream(batches, pipelined=True))
    assert len(pipe) == len(seq)
    for a, b in zip(seq, pipe):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.exits, b.exits)
        np.testing.assert_array_equal(a.entropy, b.entropy)


def test_pipeline_reports_bad_batch(runner, synthetic_test):
    _, x, _ = synthetic_test
    with pytest.raises(EdgeBranchyError, match="shape"):
        list(runner.predict_stream([x[:4], x[:4, :, :10]]))


def test_nan_input_never_exits_early(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    xb = x[:8].copy()
    xb[3] = np.nan
    with EarlyExitRunner(tiny_artifact, thresholds=[1e9]) as r:  # everything finite exits at 0
        p = r.predict(xb)
    assert p.exits[3] == 1 and np.isnan(p.entropy[3])
    assert (np.delete(p.exits, 3) == 0).all()


@pytest.mark.parametrize("bad, match", [
    (lambda x: x[:, :, :20], "shape"),
    (lambda x: x.astype(np.float64), "float32"),
    (lambda x: x[0], "shape"),
    (lambda x: x.tolist(), "numpy"),
])
def test_bad_input(runner, synthetic_test, bad, match):
    _, x, _ = synthetic_test
    with pytest.raises(EdgeBranchyError, match=match):
        runner.predict(bad(x[:4]))


def test_wrong_threshold_count(tiny_artifact):
    with pytest.raises(EdgeBranchyError, match="thresholds"):
        EarlyExitRunner(tiny_artifact, thresholds=[0.1, 0.2])


def test_unknown_backend_and_option(tiny_artifact):
    with pytest.raises(EdgeBranchyError, match="unknown backend"):
        EarlyExitRunner(tiny_artifact, backend="nope")
    with pytest.raises(EdgeBranchyError, match="unknown onnxruntime option"):
        EarlyExitRunner(tiny_artifact, options={"threads": 2})


def _copy(src, tmp_path):
    dst = tmp_path / "a"
    shutil.copytree(src, dst)
    return dst


def test_tampered_file_refused(tiny_artifact, tmp_path):
    a = _copy(tiny_artifact, tmp_path)
    p = a / "segments" / "seg1.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(EdgeBranchyError, match="modified or damaged"):
        EarlyExitRunner(a)


def test_missing_file_refused(tiny_artifact, tmp_path):
    a = _copy(tiny_artifact, tmp_path)
    (a / "baseline.onnx").unlink()
    with pytest.raises(EdgeBranchyError, match="missing"):
        Artifact.load(a)


@pytest.mark.parametrize("evil", ["../outside.onnx", "/etc/passwd", "segments/../../x.onnx"])
def test_path_traversal_refused(tiny_artifact, tmp_path, evil):
    a = _copy(tiny_artifact, tmp_path)
    m = json.loads((a / "manifest.json").read_text())
    m["segments"][0]["file"] = evil
    m["files"][evil] = {"sha256": "0" * 64, "bytes": 1}
    (a / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(EdgeBranchyError, match="leaves the artifact"):
        Artifact.load(a)


def test_symlink_out_refused(tiny_artifact, tmp_path):
    a = _copy(tiny_artifact, tmp_path)
    target = tmp_path / "elsewhere.onnx"
    shutil.copy(a / "baseline.onnx", target)
    (a / "baseline.onnx").unlink()
    (a / "baseline.onnx").symlink_to(target)
    with pytest.raises(EdgeBranchyError, match="outside"):
        Artifact.load(a)


def test_manifest_not_json(tiny_artifact, tmp_path):
    a = _copy(tiny_artifact, tmp_path)
    (a / "manifest.json").write_text("{not json")
    with pytest.raises(EdgeBranchyError, match="not valid JSON"):
        Artifact.load(a)


def test_baseline_matches_torch(runner, tiny_calibrated, synthetic_test):
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint

    _, x, _ = synthetic_test
    _, base = load_checkpoint(tiny_calibrated).build()
    with torch.no_grad():
        ref = base(torch.from_numpy(x[:64])).numpy()
    np.testing.assert_allclose(runner.backend.run_baseline(x[:64]), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(runner.baseline(x[:64]), ref.argmax(1))


def test_torch_backend_cpu_equals_onnxruntime(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact) as ort_r, EarlyExitRunner(tiny_artifact, backend="torch") as t_r:
        a, b = ort_r.predict(x[:128], return_logits=True), t_r.predict(x[:128], return_logits=True)
        assert (a.exits == b.exits).mean() >= 0.99
        same = a.exits == b.exits
        np.testing.assert_array_equal(a.labels[same], b.labels[same])
        np.testing.assert_allclose(a.logits[same], b.logits[same], rtol=1e-4, atol=1e-4)


def test_torch_backend_refuses_other_checkpoint(tiny_artifact, tiny_checkpoint):
    with pytest.raises(EdgeBranchyError, match="not the checkpoint"):
        EarlyExitRunner(tiny_artifact, backend="torch", options={"checkpoint": str(tiny_checkpoint)})


def test_switched_off_exit_is_fused_at_export(tiny_calibrated, tmp_path, synthetic_test):
    """Threshold 0 lets nobody leave: export fuses that stage into the next segment, same answers."""
    import shutil

    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.calibration import calibrate_checkpoint

    ck = tmp_path / "off.pt"
    shutil.copy(tiny_calibrated, ck)
    calibrate_checkpoint(ck, thresholds=[0.0], log=lambda s: None)
    pruned = export_checkpoint(ck, tmp_path / "pruned", log=lambda s: None)
    kept = export_checkpoint(ck, tmp_path / "kept", prune=False, log=lambda s: None)
    a, b = Artifact.load(pruned), Artifact.load(kept)
    assert a.num_exits == 1 and a.manifest["pruned_exits"] == [0] and a.manifest["segments"][0]["model_exit"] == 1
    assert b.num_exits == 2
    _, x, _ = synthetic_test
    with EarlyExitRunner(a) as ra, EarlyExitRunner(b) as rb, EarlyExitRunner(a, backend="torch") as rt:
        pa, pb, pt = ra.predict(x[:64], True), rb.predict(x[:64], True), rt.predict(x[:64], True)
    assert (pa.exits == 0).all() and (pb.exits == 1).all()
    np.testing.assert_array_equal(pa.labels, pb.labels)
    np.testing.assert_allclose(pa.logits, pb.logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pa.logits, pt.logits, rtol=1e-4, atol=1e-4)


def test_runner_from_checkpoint_equals_artifact(tiny_calibrated, tiny_artifact, synthetic_test):
    """The ONNX-free torch path straight from the checkpoint answers like the exported artifact."""
    _, x, _ = synthetic_test
    with EarlyExitRunner.from_checkpoint(tiny_calibrated) as r, EarlyExitRunner(tiny_artifact) as a:
        assert r.thresholds == pytest.approx(a.thresholds)
        p, q = r.predict(x[:64]), a.predict(x[:64])
    assert (p.exits == q.exits).mean() >= 0.98
    same = p.exits == q.exits
    np.testing.assert_array_equal(p.labels[same], q.labels[same])


@pytest.mark.parametrize("damage", [
    lambda m: m["segments"][1].pop("file"),
    lambda m: m["baseline"].update(file=3),
    lambda m: m["input"].pop("std"),
    lambda m: m.update(files=[]),
    lambda m: m["exits"].__setitem__(0, "T=0.5"),
])
def test_malformed_manifest_entries_are_user_errors(tiny_artifact, tmp_path, damage):
    a = _copy(tiny_artifact, tmp_path)
    m = json.loads((a / "manifest.json").read_text())
    damage(m)
    (a / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(EdgeBranchyError, match="manifest.json"):
        Artifact.load(a)
