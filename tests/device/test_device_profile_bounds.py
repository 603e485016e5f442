"""Every number in a profile is bounded; an absurd one is refused in one line naming the file and key."""
from __future__ import annotations

import os

import pytest

from edgebranchy.cli import main
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.device import profile_loading as L
from edgebranchy.device import profile_schema as S

BASE = (L.profiles_dir() / "x86-cpu.toml").read_text()
GPU = (L.profiles_dir() / "x86-nvidia-gpu.toml").read_text()


@pytest.mark.parametrize(
    "text, old, new, key",
    [
        (BASE, "intra_op_threads = 1", "intra_op_threads = 100000", "[runtime].intra_op_threads"),
        (BASE, "batch_size = 1\n", "batch_size = 1000000\n", "[runtime].batch_size"),
        (BASE, "max_batch = 64", "max_batch = 100000", "[tensorrt].max_batch"),
        (BASE, "interval_ms = 100", "interval_ms = 3600000", "[power].interval_ms"),
        (BASE, "interval_ms = 100", "interval_ms = 1", "[power].interval_ms"),
        (BASE, "workspace_mb = 256", "workspace_mb = 100000000", "[tensorrt].workspace_mb"),
        (BASE, "dla_core = -1", "dla_core = 8", "[tensorrt].dla_core"),
        (BASE, "p_idle_w = 10.0", "p_idle_w = 1e9", "[power.estimate].p_idle_w"),
        (BASE, "p_idle_w = 10.0", "p_idle_w = nan", "[power.estimate].p_idle_w"),
        (BASE, "p_idle_w = 10.0", "p_idle_w = inf", "[power.estimate].p_idle_w"),
        (BASE, "p_active_core_w = 9.0", "p_active_core_w = -3.0", "[power.estimate].p_active_core_w"),
        (BASE, "p_idle_core_w = 1.0", "p_idle_core_w = 5000", "[power.estimate].p_idle_core_w"),
        (GPU, "batch_size = 1\n", "batch_size = 512\n", "[runtime].batch_size 512 is above [tensorrt].max_batch 256"),
    ],
)
def test_absurd_numbers_are_refused_naming_the_file_and_key(tmp_path, text, old, new, key):
    assert old in text
    path = tmp_path / "absurd.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(EdgeBranchyError) as e:
        L.load_profile(path)
    msg = str(e.value)
    assert key in msg and "absurd.toml" in msg and "\n" not in msg


def test_thread_limit_follows_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert S.max_threads() == 256
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert S.max_threads() == S.MIN_THREAD_CAP  # a profile for a bigger board still validates here
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert S.max_threads() == S.MIN_THREAD_CAP


def test_the_largest_allowed_values_load(tmp_path):
    text = (BASE.replace("intra_op_threads = 1", f"intra_op_threads = {S.max_threads()}")
            .replace("batch_size = 1\n", f"batch_size = {S.MAX_BATCH}\n")
            .replace("interval_ms = 100", f"interval_ms = {S.MAX_INTERVAL_MS}"))
    path = tmp_path / "big.toml"
    path.write_text(text)
    p = L.load_profile(path)
    assert (p.runtime.intra_op_threads, p.runtime.batch_size, p.power.interval_ms) == (
        S.max_threads(), S.MAX_BATCH, S.MAX_INTERVAL_MS)


def test_cli_refuses_the_issue_profile_in_one_line(tmp_path, capsys):
    """The issue's `intra_op_threads = 100000` (bench grew to 8 GB): now a one-line error, exit 2."""
    path = tmp_path / "huge-threads.toml"
    path.write_text(BASE.replace("intra_op_threads = 1", "intra_op_threads = 100000"))
    assert main(["profiles", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "huge-threads.toml" in err
    assert "[runtime].intra_op_threads must be an integer from 0" in err and "got 100000" in err
