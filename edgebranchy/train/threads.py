"""How many threads the trainer's torch uses on a CPU: the CPUs this process may use (affinity mask, cgroup quota;
`util/cpus.py`) less those other processes keep busy, at least one; looked at again before every epoch.

torch's default is one intra-op thread per core of the host. When another process holds one of them, a thread
of every parallel region waits for it, and the others spin at the region's barrier: one B-LeNet epoch took 126 s
against 10.6 s quiet with two other processes busy on 2 cores (benchmarks/results/train_speed.md). With the busy
CPUs left out the regions never wait for a core that is not there (benchmarks/results/train_threads.md).
`OMP_NUM_THREADS` set by the user is obeyed as it is.
"""
from __future__ import annotations

import os

import torch


def choose_threads(processes: int = 1, busy_window_s: float = 0.2) -> tuple[int, str]:
    """(threads, why): usable CPUs less the busy ones elsewhere (rounded), shared by this machine's `processes`
    training ranks, at least 1; OMP_NUM_THREADS when set."""
    from edgebranchy.util.cpus import busy_elsewhere, usable_cpus

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    cpus = usable_cpus()
    # several ranks here (torchrun): each its share, the others' load not subtracted (it is theirs)
    busy = busy_elsewhere(busy_window_s) if cpus.count > 1 and processes == 1 else 0.0
    n = max(1, (cpus.count - int(round(busy))) // max(1, processes))
    ranks = f", {processes} ranks" if processes > 1 else ""
    return n, f"{cpus.count} usable CPUs, {busy:.1f} busy elsewhere{ranks}"


def set_threads(device: str, processes: int = 1, cap: int | None = None) -> dict | None:
    """On a CPU device: torch.set_num_threads(choose_threads(processes)), at most `cap` (what torch had when the
    trainer started: its default or the caller's own setting), returned as {"threads", "why"}; else None."""
    if not device.startswith("cpu"):
        return None
    n, why = choose_threads(processes)
    if cap is not None and n > cap:
        n, why = cap, f"{why}; at most the {cap} torch had at the start"
    if n != torch.get_num_threads() and "OMP_NUM_THREADS" not in why:
        torch.set_num_threads(n)
    return {"threads": torch.get_num_threads(), "why": why}
