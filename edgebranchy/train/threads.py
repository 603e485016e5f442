"""How many threads the trainer's torch uses on a CPU: the CPUs this process may use (affinity mask, cgroup quota;
`util/cpus.py`), shared by the training ranks on this machine, never more than torch had when the trainer
started; looked at again before every epoch and recorded with it.

torch's default is one intra-op thread per core of the host, which a container's quota or a taskset may not
grant. What made training slow under load was spinning: OpenMP threads that wait at a parallel region's barrier
spin while another process holds the core they need, so the CLI makes them wait passively
(`OMP_WAIT_POLICY=PASSIVE`, `cli/__init__.py`). Leaving out the CPUs other processes keep busy was measured
too and did not pay (benchmarks/results/train_threads.md). `OMP_NUM_THREADS` set by the user is obeyed.
"""
from __future__ import annotations

import os

import torch


def choose_threads(processes: int = 1) -> tuple[int, str]:
    """(threads, why): the usable CPUs shared by this machine's `processes` training ranks, at least 1;
    torch's own count when OMP_NUM_THREADS is set."""
    from edgebranchy.util.cpus import usable_cpus

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    cpus = usable_cpus()
    n = max(1, cpus.count // max(1, processes))
    ranks = f" shared by {processes} ranks" if processes > 1 else ""
    return n, f"{cpus.describe()}{ranks}"


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
