"""The trainer's torch threads on a CPU: the usable CPUs less those busy elsewhere, never more than torch had at
the start, OMP_NUM_THREADS obeyed; a real busy process is seen; every epoch records what it used."""
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


def _fake(monkeypatch, cpus: int, busy: float) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus_mod, "usable_cpus", lambda root="/": CpuBudget(cpus, 64, cpus, None, "affinity"))
    monkeypatch.setattr(cpus_mod, "busy_elsewhere", lambda seconds=0.25: busy)


@pytest.mark.parametrize("cpus,busy,processes,expected", [(4, 0.0, 1, 4), (4, 1.4, 1, 3), (4, 1.6, 1, 2),
                                                          (2, 1.0, 1, 1), (2, 5.0, 1, 1), (8, 3.0, 2, 4),
                                                          (1, 0.0, 1, 1)])
def test_usable_less_busy(monkeypatch, cpus, busy, processes, expected):
    _fake(monkeypatch, cpus, busy)
    n, why = choose_threads(processes)
    assert n == expected and f"{cpus} usable CPUs" in why


def test_omp_num_threads_is_obeyed(monkeypatch, restore_threads):
    _fake(monkeypatch, 8, 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert set_threads("cpu") == {"threads": 1, "why": "OMP_NUM_THREADS=1"}


def test_set_threads_sets_torch_within_the_cap(monkeypatch, restore_threads):
    _fake(monkeypatch, 4, 1.0)
    torch.set_num_threads(1)
    assert set_threads("cuda:0") is None
    assert set_threads("cpu", cap=2)["threads"] == 2 and torch.get_num_threads() == 2
    got = set_threads("cpu", cap=8)
    assert got["threads"] == 3 and torch.get_num_threads() == 3 and "1.0 busy elsewhere" in got["why"]


def test_a_real_busy_process_takes_a_thread_away(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus_mod, "usable_cpus", lambda root="/": CpuBudget(64, 64, 64, None, "affinity"))
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        n, why = choose_threads(busy_window_s=0.5)
    finally:
        loop.kill()
        loop.wait()
    assert n <= 63, why  # at least the loop's CPU is left out


def test_every_epoch_records_its_threads(tmp_path, restore_threads):
    from edgebranchy.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(1)
    cfg = TrainConfig(model="b-lenet", dataset="synthetic", limit=100, epochs=1, baseline_epochs=1, batch_size=50)
    t = Trainer(cfg, tmp_path / "t.pt", progress=False)
    t.run()
    assert [h["cpu_threads"]["threads"] for h in t.history] == [1, 1]  # the caller's 1 is the ceiling
    assert all("usable CPUs" in h["cpu_threads"]["why"] or "OMP_NUM_THREADS" in h["cpu_threads"]["why"]
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
