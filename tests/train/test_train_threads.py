"""The trainer's torch threads on a CPU: the usable CPUs (a real affinity mask in a subprocess), shared by the
ranks, never more than torch had at the start, OMP_NUM_THREADS obeyed; every epoch records what it used; the CLI
makes OpenMP wait passively before torch loads."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import edgebranchy.util.cpus as cpus_mod
from edgebranchy.train.threads import choose_threads, set_threads
from edgebranchy.util.cpus import CpuBudget


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _fake(monkeypatch, cpus: int) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus_mod, "usable_cpus", lambda root="/": CpuBudget(cpus, 64, cpus, None, "affinity"))


@pytest.mark.parametrize("cpus,processes,expected", [(4, 1, 4), (2, 1, 2), (8, 2, 4), (3, 2, 1), (1, 4, 1)])
def test_the_usable_cpus_shared_by_the_ranks(monkeypatch, cpus, processes, expected):
    _fake(monkeypatch, cpus)
    n, why = choose_threads(processes)
    assert n == expected and f"{cpus} CPUs usable" in why


def test_omp_num_threads_is_obeyed(monkeypatch, restore_threads):
    _fake(monkeypatch, 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert set_threads("cpu") == {"threads": 1, "why": "OMP_NUM_THREADS=1"}


def test_set_threads_sets_torch_within_the_cap(monkeypatch, restore_threads):
    _fake(monkeypatch, 3)
    torch.set_num_threads(1)
    assert set_threads("cuda:0") is None
    assert set_threads("cpu", cap=2)["threads"] == 2 and torch.get_num_threads() == 2
    got = set_threads("cpu", cap=8)
    assert got["threads"] == 3 and torch.get_num_threads() == 3 and "affinity" in got["why"]


def test_a_real_affinity_mask_is_what_the_trainer_uses():
    """In a subprocess pinned to one CPU, torch gets one thread, whatever the host has."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs sched_setaffinity and at least 2 CPUs")
    code = ("import os, torch\nos.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\ntorch.set_num_threads(8)\n"
            "from edgebranchy.train.threads import set_threads\nprint('GOT', set_threads('cpu', cap=8)['threads'])\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "GOT 1" in out.stdout


def test_every_epoch_records_its_threads(tmp_path, restore_threads):
    from edgebranchy.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(1)
    cfg = TrainConfig(model="b-lenet", dataset="synthetic", limit=100, epochs=1, baseline_epochs=1, batch_size=50)
    t = Trainer(cfg, tmp_path / "t.pt", progress=False)
    t.run()
    assert [h["cpu_threads"]["threads"] for h in t.history] == [1, 1]  # the caller's 1 is the ceiling
    assert all("CPUs usable" in h["cpu_threads"]["why"] or "OMP_NUM_THREADS" in h["cpu_threads"]["why"]
               for h in t.history)


@pytest.mark.parametrize("given,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_cli_makes_openmp_wait_passively_before_torch_loads(given, expected):
    """A command's process gets OMP_WAIT_POLICY=PASSIVE (the user's own value kept) before torch is imported."""
    code = ("import os, sys\nfrom edgebranchy.cli import main\nmain(['profiles'])\n"
            "print('POLICY', os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert f"POLICY {expected}" in out.stdout
