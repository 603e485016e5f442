"""Shared fixtures: a tiny trained checkpoint and its exported artifact (built once per session)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eb_testutil import ROOT, run_cli  # noqa: F401  (re-exported for older tests)


@pytest.fixture(autouse=True)
def _data_cache_in_tmp(tmp_path, monkeypatch):
    """The decoded-data cache (edgebranchy/data/cache.py) of each test lives in its tmp_path: the suite
    never writes to ~/.cache, and subprocesses inherit the setting."""
    monkeypatch.setenv("EDGEBRANCHY_CACHE", str(tmp_path / "edgebranchy-cache"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test: the CI machine is small and shared, and torch's spinning
    worker threads make tiny models many times slower there. Results do not depend on it."""
    try:
        import torch
    except ImportError:  # the device-side tests run without torch
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """B-LeNet trained for a few steps on the synthetic set (seconds)."""
    from edgebranchy.train.trainer import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    cfg = TrainConfig(model="b-lenet", dataset="synthetic", epochs=1, baseline_epochs=1, max_steps=30,
                      batch_size=64, seed=0)
    Trainer(cfg, out, progress=False).run()
    return out


@pytest.fixture(scope="session")
def tiny_calibrated(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint with a threshold that lets a good share of samples exit early."""
    import shutil

    from edgebranchy.calibration import calibrate_checkpoint
    from edgebranchy.models.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("ckpt-cal") / "tiny-cal.pt"
    shutil.copy(tiny_checkpoint, out)
    calibrate_checkpoint(out, thresholds=[_median_entropy(load_checkpoint(out))], log=lambda s: None)
    return out


def _median_entropy(ck) -> float:
    import torch

    from edgebranchy.data import load_dataset
    from edgebranchy.data.datasets import Normalization
    from edgebranchy.exits.entropy import entropy

    net, _ = ck.build()
    b = load_dataset("synthetic")
    x = torch.from_numpy(b.val.x_float(Normalization.from_dict(ck.config["input"])))
    with torch.no_grad():
        logits = net(x)[0].numpy()
    return float(np.median(entropy(logits)))


@pytest.fixture(scope="session")
def tiny_artifact(tiny_calibrated, tmp_path_factory) -> Path:
    from edgebranchy.export.onnx import export_checkpoint

    out = tmp_path_factory.mktemp("art") / "tiny-artifact"
    export_checkpoint(tiny_calibrated, out, precision="fp16", log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def tiny_int8_artifact(tiny_calibrated, tmp_path_factory) -> Path:
    """The tiny checkpoint exported with INT8 Q/DQ graphs beside the FP32 ones (not recalibrated)."""
    from edgebranchy.export.onnx import export_checkpoint

    out = tmp_path_factory.mktemp("art8") / "tiny-int8"
    export_checkpoint(tiny_calibrated, out, precision="int8", calibration_samples=64, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def synthetic_test():
    """(normalised float32 test images, labels) of the synthetic set, as the tiny model saw them."""
    from edgebranchy.data import load_dataset

    b = load_dataset("synthetic")
    return b, b.test.x_float(b.norm), b.test.y
