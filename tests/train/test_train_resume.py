"""Resume after a real SIGKILL gives bit-identical weights; torchrun with two gloo processes.

These run the real CLI in subprocesses. The uninterrupted reference run goes in the background
while the interrupted chain runs, to keep the wall time down on a small machine.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.checkpoint import load_checkpoint
from edgebranchy.train.trainer import TrainConfig, Trainer

from eb_testutil import run_cli_with, sigkill_after_epoch

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["train", "--dataset", "synthetic", "--samples", "600", "--epochs", "2", "--baseline-epochs", "2",
        "--batch-size", "64", "--quiet"]


def _env(**extra: str) -> dict:
    # one intra-op thread (what torchrun sets too): a shared 2-core machine is several times faster so
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgebranchy", *ARGS, "--out", str(out), *extra]


def _train(out: Path, *extra: str, kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    if kill:  # the trainer's on_epoch callback SIGKILLs the process after that epoch's state is on disk
        return run_cli_with(sigkill_after_epoch(*kill), *ARGS, "--out", out, *extra, env=_env(), timeout=240)
    return subprocess.run(_cmd(out, *extra), capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT)


def _ok(r) -> None:
    assert r.returncode == 0, f"rc {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def _killed(r, out: Path, phase_index: int, epoch: int) -> None:
    resume = out.with_name(out.name + ".resume")
    assert r.returncode == -signal.SIGKILL, f"expected SIGKILL, rc {r.returncode}\n{r.stderr}"
    assert resume.is_file() and not out.exists()
    assert not list(out.parent.glob(".*.tmp")), "a temporary file was left behind"
    st = torch.load(resume, weights_only=True)
    assert (st["phase_index"], st["epoch"]) == (phase_index, epoch)


def _assert_same_weights(a: Path, b: Path) -> None:
    ra, rb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for part in ("branchy", "baseline"):
        sa, sb = ra[part], rb[part]
        assert sa and sa.keys() == sb.keys(), part
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{part} {k} differs after resume"


@pytest.mark.slow
def test_resume_after_sigkill_in_each_phase_is_bit_identical(tmp_path):
    ref = tmp_path / "A.pt"
    background = subprocess.Popen(_cmd(ref), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_env(), cwd=ROOT)
    try:
        out = tmp_path / "B.pt"
        resume = tmp_path / "B.pt.resume"
        # 1. killed after baseline epoch 1 (of 2)
        _killed(_train(out, kill=("baseline", 1)), out, 0, 1)
        # 2. resuming with other settings is refused with one line, and the state is kept
        r = _train(out, "--resume", "--seed", "1")
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.strip().splitlines() if not ln.rstrip().endswith(" ...")]  # notes
        assert len(lines) == 1 and "other settings" in lines[0], r.stderr
        assert resume.is_file() and not out.exists()
        # 3. resumed, and killed again after joint epoch 1 (of 2)
        _killed(_train(out, "--resume", kill=("joint", 1)), out, 1, 1)
        # 4. resumed to the end
        _ok(_train(out, "--resume"))
        assert out.is_file() and not resume.exists()
        stdout, stderr = background.communicate(timeout=240)
    finally:
        if background.poll() is None:
            background.kill()
            background.wait()
    assert background.returncode == 0, stderr
    assert ref.is_file() and not (tmp_path / "A.pt.resume").exists()
    _assert_same_weights(ref, out)
    a, b = load_checkpoint(ref).config, load_checkpoint(out).config
    assert a["validation"] == b["validation"] and a["test"] == b["test"]
    # the resumed run carries the history of the epochs before the kill
    epochs = [(h["phase"], h["epoch"]) for h in b["train"]["history"]]
    assert epochs == [(h["phase"], h["epoch"]) for h in a["train"]["history"]]
    assert [h["loss"] for h in b["train"]["history"]] == [h["loss"] for h in a["train"]["history"]]


def _trainer(tmp_path) -> Trainer:
    cfg = TrainConfig(dataset="synthetic", limit=100, epochs=1, baseline_epochs=0, batch_size=32)
    return Trainer(cfg, tmp_path / "C.pt", progress=False)


def test_damaged_resume_state_is_one_line_user_error(tmp_path):
    (tmp_path / "C.pt.resume").write_bytes(b"\x00garbage")
    with pytest.raises(EdgeBranchyError, match="damaged state file") as e:
        _trainer(tmp_path).run(resume=True)
    assert len(str(e.value).splitlines()) == 1 and str(tmp_path / "C.pt.resume") in str(e.value)


def test_resume_state_that_is_not_a_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "C.pt.resume")
    with pytest.raises(EdgeBranchyError):
        _trainer(tmp_path).run(resume=True)


def test_resume_without_state_starts_from_scratch(tmp_path):
    t = _trainer(tmp_path)
    t.run(resume=True)
    assert (tmp_path / "C.pt").is_file() and [h["phase"] for h in t.history] == ["joint"]


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "X.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgebranchy", "train", "--dataset", "synthetic", "--samples", "400", "--epochs", "1",
           "--baseline-epochs", "1", "--batch-size", "64", "--quiet", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=_env(MASTER_ADDR="127.0.0.1"),
                       cwd=ROOT)
    assert r.returncode == 0, f"rc {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-4000:]}"
    assert r.stdout.count("checkpoint:") == 1  # only rank 0 reports
    ck = load_checkpoint(out)
    assert ck.config["train"]["world_size"] == 2
    # 360 training samples, 180 a rank, 32 a rank a step (global batch 64)
    assert [h["steps"] for h in ck.config["train"]["history"]] == [6, 6]
    net, base = ck.build()
    x = torch.zeros(2, 1, 28, 28)
    with torch.no_grad():
        assert [o.shape for o in net(x)] == [(2, 10), (2, 10)] and base(x).shape == (2, 10)
    assert not (tmp_path / "X.pt.resume").exists()
