"""The CPUs this process may really use.

`os.cpu_count()` counts the host's CPUs. A process pinned to some of them (taskset, `os.sched_setaffinity`, a
cgroup cpuset) or in a container with a CPU quota (cgroup v2 `cpu.max` "150000 100000" = 1.5 CPUs; v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`) may use fewer, and thread pools sized to the host fight over the CPUs
it has. `usable_cpus()` is the smallest of: the affinity mask, the quota of the process's cgroup and of every
cgroup above it (rounded down, at least 1), and the CPU count. `threads_per_session` divides them among
concurrent streams. Standard library only.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuBudget:
    """How many CPUs the process may use (`count`, at least 1) and what decided it."""

    count: int
    online: int                 # os.cpu_count()
    affinity: int | None        # CPUs in the affinity mask (None: the platform has no sched_getaffinity)
    quota: float | None         # the tightest cgroup CPU quota, in CPUs (None: no quota)
    source: str                 # what limits `count`: "affinity", "cgroup v2 cpu.max", "cgroup v1 cfs quota", "cpu count"

    def describe(self) -> str:
        extra = [f"affinity {self.affinity}" if self.affinity is not None else "no affinity mask"]
        extra.append(f"cgroup quota {self.quota:g} CPUs" if self.quota is not None else "no cgroup quota")
        return f"{self.count} CPUs usable (from {self.source}; {self.online} online, {', '.join(extra)})"

    def to_dict(self) -> dict:
        return asdict(self)


def affinity_count() -> int | None:
    """CPUs in this process's affinity mask, or None where the platform cannot say (macOS, Windows)."""
    get = getattr(os, "sched_getaffinity", None)
    if get is None:
        return None
    try:
        return len(get(0)) or None
    except OSError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _mounts(root: Path) -> list[tuple[str, str, str, str]]:
    """(mount root, mount point, fs type, super options) of every cgroup mount in /proc/self/mountinfo; the
    usual places where that file cannot be read."""
    text = _read(root / "proc/self/mountinfo")
    if text is None:
        return [("/", "/sys/fs/cgroup", "cgroup2", ""), ("/", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu"),
                ("/", "/sys/fs/cgroup/cpu", "cgroup", "cpu")]
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            out.append((fields[3], fields[4], tail[0], tail[2]))
    return out


def _cgroup_paths(root: Path) -> dict[str, str]:
    """{"v2": path, "v1": path of the cpu controller} from /proc/self/cgroup (each where present)."""
    paths: dict[str, str] = {}
    for line in (_read(root / "proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths["v2"] = parts[2]
        elif "cpu" in parts[1].split(","):
            paths["v1"] = parts[2]
    return paths


def _levels(root: Path, mount_root: str, mount_point: str, cgroup: str) -> list[Path]:
    """The process's cgroup directory under a mount and every directory above it up to the mount point. A
    cgroup outside what the mount shows (a container's namespace) is read at the mount point only."""
    top = root / mount_point.lstrip("/")
    rel = cgroup
    if mount_root != "/" and (rel == mount_root or rel.startswith(mount_root.rstrip("/") + "/")):
        rel = rel[len(mount_root.rstrip("/")):]
    here = top / rel.strip("/")
    if not here.is_dir():
        return [top]
    out = [here]
    while here != top:
        here = here.parent
        out.append(here)
    return out


def _v2_quota(d: Path) -> float | None:
    text = _read(d / "cpu.max")
    if not text:
        return None
    parts = text.split()
    try:
        return None if parts[0] == "max" else int(parts[0]) / int(parts[1] if len(parts) > 1 else 100000)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_quota(d: Path) -> float | None:
    quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
    try:
        q, p = int(quota or "-1"), int(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_quota(root: str | os.PathLike = "/") -> tuple[float, str] | None:
    """The tightest CPU quota of this process's cgroup and those above it, in CPUs, and which interface gave it
    ("cgroup v2 cpu.max" or "cgroup v1 cfs quota"); None when there is none. `root`: where proc/ and sys/ are
    (tests: a fake tree)."""
    root = Path(root)
    paths = _cgroup_paths(root)
    best: tuple[float, str] | None = None
    for mount_root, point, fstype, options in _mounts(root):
        if fstype == "cgroup2" and "v2" in paths:
            cgroup, read, name = paths["v2"], _v2_quota, "cgroup v2 cpu.max"
        elif fstype == "cgroup" and "cpu" in options.split(",") and "v1" in paths:
            cgroup, read, name = paths["v1"], _v1_quota, "cgroup v1 cfs quota"
        else:
            continue
        for d in _levels(root, mount_root, point, cgroup):
            q = read(d)
            if q is not None and (best is None or q < best[0]):
                best = (q, name)
    return best


def usable_cpus(root: str | os.PathLike = "/") -> CpuBudget:
    """How many CPUs this process may use: affinity mask, cgroup quota (rounded down, at least 1), CPU count."""
    online = os.cpu_count() or 1
    aff = affinity_count()
    count, source = (aff, "affinity") if aff is not None and aff < online else (aff or online, "cpu count")
    quota = cgroup_quota(root)
    if quota is not None and max(1, math.floor(quota[0] + 1e-9)) < count:
        count, source = max(1, math.floor(quota[0] + 1e-9)), quota[1]
    return CpuBudget(count=count, online=online, affinity=aff, quota=None if quota is None else quota[0],
                     source=source)


def threads_per_session(streams: int, cpus: int, wanted: int = 0) -> int:
    """Intra-op threads for each of `streams` concurrent sessions on `cpus` CPUs, so that streams x threads
    does not exceed them: `wanted` (0: as many as fit) capped at cpus // streams, at least 1."""
    fit = max(1, cpus // max(1, streams))
    return fit if wanted <= 0 else min(wanted, fit)
