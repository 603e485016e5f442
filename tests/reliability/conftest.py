"""Fixtures for the reliability tests."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def art(tiny_artifact, tmp_path):
    """A private copy of the tiny artifact, for tests that damage or overwrite it."""
    dst = tmp_path / "art"
    shutil.copytree(tiny_artifact, dst)
    return dst


@pytest.fixture(scope="session")
def reader_world(tiny_calibrated, tiny_artifact, tmp_path_factory):
    """One valid file of every kind the readers take: a checkpoint, an artifact, a results file with its trial
    log and latencies side file (a real bench), a resume state and a trainer to read it."""
    import io
    from types import SimpleNamespace

    import torch

    from edgebranchy.train.trainer import TrainConfig, Trainer
    from rel_util import cli

    root = tmp_path_factory.mktemp("reader-world")
    results = root / "r.json"
    rc, _, err = cli("bench", tiny_artifact, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                     "--samples", "6", "--trials", "2", "--warmup", "1", "--min-window", "0", "--idle", "0",
                     "--out", results)
    assert rc == 0, err
    trainer = Trainer(TrainConfig(model="b-lenet", dataset="synthetic", epochs=1, baseline_epochs=1, max_steps=1,
                                  batch_size=64), root / "t.pt", progress=False)
    opt = torch.optim.Adam(trainer.net.parameters())
    buf = io.BytesIO()
    torch.save({"phase_index": 0, "epoch": 1, "net": trainer.net.state_dict(), "baseline_state": {},
                "optimizer": opt.state_dict(), "rng": torch.get_rng_state(), "history": [],
                "config": trainer._resume_key()}, buf)
    (root / "t.pt.resume").write_bytes(buf.getvalue())
    return SimpleNamespace(art=tiny_artifact, checkpoint=tiny_calibrated, results=results,
                           trial_log=root / "r.json.jsonl", latencies=root / "r.json.latencies.npz",
                           resume=root / "t.pt.resume", trainer=trainer)
