"""util/cpus.py: the CPUs a process may use, from fake cgroup trees (v1 and v2, nested limits, containers) and
from a real affinity mask set in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgebranchy.util.cpus import cgroup_quota, threads_per_session, usable_cpus
from eb_testutil import ROOT

V2_MOUNT = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def tree(tmp_path: Path, cgroup: str, mountinfo: str | None, files: dict) -> Path:
    """A fake root: proc/self/cgroup, proc/self/mountinfo (None: absent) and the given files under it."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    if mountinfo is not None:
        (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_v2_quota_of_the_process_cgroup(tmp_path):
    root = tree(tmp_path, "0::/user.slice/app\n", V2_MOUNT,
                {"sys/fs/cgroup/cpu.max": "max 100000\n", "sys/fs/cgroup/user.slice/cpu.max": "max 100000\n",
                 "sys/fs/cgroup/user.slice/app/cpu.max": "150000 100000\n"})
    assert cgroup_quota(root) == (1.5, "cgroup v2 cpu.max")


def test_v2_a_parent_cgroup_limits_its_children(tmp_path):
    root = tree(tmp_path, "0::/user.slice/app\n", V2_MOUNT,
                {"sys/fs/cgroup/user.slice/cpu.max": "50000 100000\n",
                 "sys/fs/cgroup/user.slice/app/cpu.max": "max 100000\n"})
    assert cgroup_quota(root) == (0.5, "cgroup v2 cpu.max")
    budget = usable_cpus(root)
    assert budget.count == 1 and budget.quota == 0.5  # at least one CPU, even under half a CPU of quota
    if (budget.affinity or os.cpu_count()) > 1:
        assert budget.source == "cgroup v2 cpu.max"


def test_v2_no_limit_is_no_quota(tmp_path):
    root = tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert cgroup_quota(root) is None


def test_v1_container_sees_its_own_cgroup_as_the_mount_root(tmp_path):
    # a container: /proc/self/cgroup names /docker/abc, and the mount shows that cgroup as its root
    info = "40 31 0:37 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    root = tree(tmp_path, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n", info,
                {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                 "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_quota(root) == (2.0, "cgroup v1 cfs quota")


def test_v1_unlimited_and_v2_limited_in_a_hybrid_tree(tmp_path):
    info = ("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    root = tree(tmp_path, "1:cpu:/\n0::/\n", info,
                {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
                 "sys/fs/cgroup/unified/cpu.max": "300000 100000\n"})
    assert cgroup_quota(root) == (3.0, "cgroup v2 cpu.max")


def test_without_mountinfo_the_usual_places_are_read(tmp_path):
    root = tree(tmp_path, "0::/\n", None, {"sys/fs/cgroup/cpu.max": "100000 100000\n"})
    assert cgroup_quota(root) == (1.0, "cgroup v2 cpu.max")


def test_nothing_readable_is_no_quota(tmp_path):
    assert cgroup_quota(tmp_path) is None
    budget = usable_cpus(tmp_path)
    want = budget.affinity if budget.affinity is not None else os.cpu_count()
    assert budget.count == want and budget.quota is None


def test_garbage_files_are_no_quota(tmp_path):
    root = tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "lots of cpus\n"})
    assert cgroup_quota(root) is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs sched_setaffinity and at least 2 CPUs")
def test_real_affinity_mask_in_a_subprocess(tmp_path):
    code = ("import json, os\nfrom edgebranchy.util.cpus import usable_cpus\n"
            "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            f"print(json.dumps(usable_cpus({str(tmp_path)!r}).to_dict()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    got = json.loads(out.stdout)
    assert got["count"] == 1 and got["affinity"] == 1 and got["source"] == "affinity"
    assert got["online"] == os.cpu_count()


@pytest.mark.parametrize("streams,cpus,wanted,expected", [
    (1, 2, 0, 2), (2, 2, 0, 1), (4, 2, 0, 1), (1, 8, 0, 8), (3, 8, 0, 2), (4, 12, 0, 3),
    (1, 2, 1, 1), (1, 8, 4, 4), (2, 8, 6, 4), (4, 2, 2, 1)])
def test_threads_per_session_never_oversubscribe(streams, cpus, wanted, expected):
    got = threads_per_session(streams, cpus, wanted)
    assert got == expected
    assert got >= 1 and (streams * got <= cpus or got == 1)
