"""Manifest, checkpoint and CIFAR loaders: impossible values are one line naming the field (items 10-12, 14)."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.util.files import sha256_file

from rel_util import cli, one_error_line


def _edit_manifest(art, fn):
    m = json.loads((art / "manifest.json").read_text())
    fn(m)
    (art / "manifest.json").write_text(json.dumps(m))


def _set(path, value):
    def fn(m):
        obj = m
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return fn


BAD_MANIFEST = [
    (("input", "scale"), 0, "input.scale"),
    (("input", "scale"), -255.0, "input.scale"),
    (("input", "scale"), "255", "input.scale"),
    (("input", "scale"), True, "input.scale"),
    (("input", "std"), [0.0], "input.std"),
    (("input", "std"), [0.3, 0.3], "input.std"),
    (("input", "mean"), "0.5", "input.mean"),
    (("input", "shape"), [1, 28], "input.shape"),
    (("input", "shape"), [1, 0, 28], "input.shape"),
    (("input", "shape"), [1.5, 28, 28], "input.shape"),
    (("input",), [], "input"),
    (("classes",), [], "classes"),
    (("classes",), "0123456789", "classes"),
    (("classes",), [1, 2], "classes"),
    (("exits", 0, "threshold"), True, "threshold"),
    (("exits", 0, "threshold"), -1.0, "threshold"),
    (("exits", 0, "threshold"), "0.2", "threshold"),
    (("exits",), {"0": {}}, "exits"),
    (("segments",), 3, "segments"),
    (("entropy",), "nats", "entropy"),
    (("entropy", "temperatures"), [0.0, 1.0], "temperatures"),
    (("entropy", "normalized"), "yes", "normalized"),
    (("model",), "b-lenet", "model"),
    (("schema_version",), True, "schema version"),
    (("segments", 0, "feature_shape"), "big", "feature_shape"),
]


@pytest.mark.parametrize("path, value, field", BAD_MANIFEST, ids=[f"{'.'.join(map(str, p))}={v!r}"
                                                                    for p, v, _ in BAD_MANIFEST])
def test_manifest_field_types_and_ranges(art, path, value, field):
    _edit_manifest(art, _set(path, value))
    with pytest.raises(EdgeBranchyError) as e:
        Artifact.load(art, verify=False)
    assert field in str(e.value) and "\n" not in str(e.value)
    rc, _, err = cli("predict", art, "--dataset", "synthetic", "--samples", "4")
    assert rc == 2 and field in one_error_line(err, "predict")


def _replace_graph(art, rel, model):
    import onnx

    onnx.save(model, art / rel)
    _edit_manifest(art, lambda m: m["files"][rel].update(sha256=sha256_file(art / rel)))


def _linear_graph(in_shape, classes, out_name="logits"):
    """x [N, *in_shape] -> Flatten -> MatMul -> [N, classes]: another model with an updated hash."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in = int(np.prod(in_shape))
    w = numpy_helper.from_array(np.zeros((n_in, classes), np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("MatMul", ["f", "w"], [out_name])],
        "other", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", classes])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("change", ["classes", "input", "outputs"])
def test_replaced_baseline_graph_is_caught(art, synthetic_test, change):
    from edgebranchy.runtime.runner import EarlyExitRunner

    a = Artifact.load(art)
    shape, k = list(a.input_shape), len(a.classes)
    model = {"classes": _linear_graph(shape, k + 3),
             "input": _linear_graph([shape[0], shape[1] + 1, shape[2]], k),
             "outputs": _linear_graph(shape, k, out_name="features")}[change]
    _replace_graph(art, "baseline.onnx", model)
    _, x, _ = synthetic_test
    with EarlyExitRunner(art) as r, pytest.raises(EdgeBranchyError, match="baseline.onnx"):
        r.baseline(x[:2])


def test_replaced_segment_graph_is_caught(art):
    from edgebranchy.runtime.runner import EarlyExitRunner

    a = Artifact.load(art)
    seg = a.manifest["segments"][-1]
    _replace_graph(art, seg["file"], _linear_graph(seg["input_shape"], len(a.classes) + 1))
    with pytest.raises(EdgeBranchyError, match="outputs|classes"):
        EarlyExitRunner(art)


# ------------------------------------------------------------------ checkpoints

def _write_raw_checkpoint(path, config, like):
    """A checkpoint with an arbitrary config, written the way save_checkpoint does (bypassing its checks)."""
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint

    ck = load_checkpoint(like)
    torch.save({"format": "edgebranchy.checkpoint", "version": 1, "config": json.dumps(config),
                "branchy": ck.branchy_state, "baseline": ck.baseline_state}, path)


def _config(like):
    from edgebranchy.models.checkpoint import load_checkpoint

    return load_checkpoint(like).config


BAD_CONFIG = [
    (lambda c: c.pop("input"), "'input'"),
    (lambda c: c["input"].update(scale=0.0), "input.scale"),
    (lambda c: c["input"].update(std=[0.0]), "input.std"),
    (lambda c: c.update(classes=[]), "classes"),
    (lambda c: c.update(calibration={"thresholds": ["low"]}), "calibration.thresholds"),
    (lambda c: c.update(calibration={"thresholds": [-1.0]}), "calibration.thresholds"),
    (lambda c: c.update(calibration={"thresholds": [True]}), "calibration.thresholds"),
    (lambda c: c.update(calibration="yes"), "calibration"),
]


@pytest.mark.parametrize("edit, field", BAD_CONFIG, ids=[f for _, f in BAD_CONFIG])
def test_checkpoint_config_fields(tiny_calibrated, tmp_path, edit, field):
    cfg = _config(tiny_calibrated)
    edit(cfg)
    p = tmp_path / "bad.pt"
    _write_raw_checkpoint(p, cfg, tiny_calibrated)
    before = p.read_bytes()
    for argv in (["export", p, "--out", tmp_path / "a"], ["calibrate", p, "--in-place", "--thresholds", "0.1"]):
        rc, _, err = cli(*argv)
        assert rc == 2 and field in one_error_line(err)
    assert p.read_bytes() == before and not (tmp_path / "a").exists()


def test_checkpoint_classes_must_match_the_outputs(tiny_calibrated, tmp_path):
    cfg = _config(tiny_calibrated)
    cfg["classes"] = cfg["classes"][:3]
    p = tmp_path / "three.pt"
    _write_raw_checkpoint(p, cfg, tiny_calibrated)
    rc, _, err = cli("export", p, "--out", tmp_path / "a", "--no-simplify", "--check-samples", "4")
    assert rc == 2 and "3 classes" in one_error_line(err, "export")
    assert not (tmp_path / "a").exists()


def test_weights_only_refusal_in_our_words(tmp_path):
    import os

    import torch

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pt"
    torch.save({"format": "edgebranchy.checkpoint", "version": 1, "config": "{}", "x": Evil()}, p)
    for argv in (["export", p, "--out", tmp_path / "a"], ["calibrate", p, "--in-place"]):
        rc, _, err = cli(*argv)
        line = one_error_line(err)
        assert rc == 2 and "refused" in line and "weights_only=False" not in line and "posix.system" in line
    # the resume state of train goes through the same loader
    from edgebranchy.train.trainer import TrainConfig, Trainer

    out = tmp_path / "m.pt"
    shutil.copy(p, tmp_path / "m.pt.resume")
    with pytest.raises(EdgeBranchyError) as e:
        Trainer(TrainConfig(dataset="synthetic", limit=100, max_steps=1), out, progress=False).run(resume=True)
    assert "weights_only=False" not in str(e.value) and "refused" in str(e.value)
    assert not marker.exists()


def test_resume_state_of_another_shape(tmp_path):
    import torch

    from edgebranchy.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(dataset="synthetic", limit=100, max_steps=1, epochs=1, baseline_epochs=0)
    t = Trainer(cfg, tmp_path / "m.pt", progress=False)
    state = {"phase_index": 0, "epoch": 1, "net": {"stages.0.weight": torch.zeros(3)}, "baseline_state": {},
             "optimizer": {}, "rng": torch.get_rng_state(), "history": [], "config": t._resume_key()}
    torch.save(state, tmp_path / "m.pt.resume")
    with pytest.raises(EdgeBranchyError, match="does not fit"):
        t.run(resume=True)


@pytest.mark.parametrize("edit, phrase", [
    (dict(lr=float("inf")), "lr"), (dict(lr=float("nan")), "lr"), (dict(betas=(2, 2)), "betas"),
    (dict(exit_weights=[float("nan"), 1.0]), "exit_weights"), (dict(exit_weights=[-1, -1]), "exit_weights"),
    (dict(seed=-1), "seed"), (dict(device="bogus"), "device"), (dict(epochs=0), "epochs"),
    (dict(batch_size=True), "batch_size"),
])
def test_train_config_checked_before_data(tmp_path, edit, phrase):
    from edgebranchy.train.trainer import TrainConfig, Trainer

    with pytest.raises(EdgeBranchyError, match=phrase):
        Trainer(TrainConfig(dataset="no-such-data-set", **edit), tmp_path / "m.pt", progress=False)


def test_device_cuda_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rc, _, err = cli("train", "--dataset", "synthetic", "--device", "cuda", "--out", tmp_path / "m.pt")
    assert rc == 2 and "CUDA is not available" in one_error_line(err, "train")
    assert not (tmp_path / "m.pt").exists()


# ------------------------------------------------------------------ CIFAR batches

@pytest.mark.parametrize("labels", [["a", "b"], [1.5, 2.0], [True, False], 7, {"x": 1}, np.array([0.5, 1.0]),
                                    np.zeros((2, 1), np.int64)])
def test_cifar_label_types(tmp_path, labels):
    from edgebranchy.data.cifar import read_batch

    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2))
    with pytest.raises(EdgeBranchyError, match="labels"):
        read_batch(p)


def test_cifar_data_types(tmp_path):
    from edgebranchy.data.cifar import read_batch

    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(EdgeBranchyError, match="uint8"):
        read_batch(p)


def test_calibrate_cost_file_goes_through_the_results_validator(tiny_calibrated, tmp_path):
    ck = tmp_path / "m.pt"
    shutil.copy(tiny_calibrated, ck)
    before = ck.read_bytes()
    bad = tmp_path / "r.json"
    for doc in ({"schema": "edgebranchy.results"}, {"schema": "edgebranchy.results", "schema_version": 1,
                                                    "variants": "fast"}, [1, 2]):
        bad.write_text(json.dumps(doc))
        rc, _, err = cli("calibrate", ck, "--in-place", "--cost", bad)
        assert rc == 2 and str(bad) in one_error_line(err, "calibrate")
    assert ck.read_bytes() == before
