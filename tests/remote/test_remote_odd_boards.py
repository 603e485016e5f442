"""One odd board fails alone (issue 29, part B): a login that prints a banner on stdout (an `echo` in .bashrc) and a
board whose run folder comes back as a tar with a `..` member. The boards are a fake `ssh` on PATH that runs each
command in a local shell with the board's own HOME, as sshd would, printing the banner first where it has one."""
from __future__ import annotations

import json
import os
import sys
import zipfile

from eb_testutil import run_cli

FAKE_SSH = r'''#!{python}
import io, os, re, subprocess, sys, tarfile
argv = sys.argv[1:]
i = argv.index("--")
host = argv[i + 1].split("@")[-1]
command = " ".join(argv[i + 2:])
home = os.path.join(os.environ["FAKE_BOARDS"], host)
os.makedirs(home, exist_ok=True)
script = sys.stdin.buffer.read()
if host.startswith("banner"):  # what an `echo` in .bashrc prints before every command
    sys.stdout.write("Welcome to the lab board! Be nice.\n")
    sys.stdout.flush()
run = re.search(rb'cd "\$WD/runs/"([^\s|&]+)', script)
if run:  # the fetch: a run folder as the bench leaves it
    folder = os.path.join(home, ".edgebranchy", "runs", run.group(1).decode())
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "doctor.json"), "w") as f:
        f.write("{}")
    if host.startswith("evil"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"pwned"
            info = tarfile.TarInfo("../../escaped.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        sys.stdout.buffer.write(b"edgebranchy-tar-follows\n" + buf.getvalue())
        sys.exit(0)
sys.stdout.flush()
p = subprocess.run(["sh", "-c", command], input=script, env=dict(os.environ, HOME=home))
sys.exit(p.returncode)
'''


def test_a_banner_and_a_hostile_tar_fail_alone(tiny_artifact, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(FAKE_SSH.replace("{python}", sys.executable))
    (bindir / "ssh").chmod(0o755)
    wheel = tmp_path / "edgebranchy-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:  # never installed: the environment step fails, the fetch still runs
        z.writestr("edgebranchy/__init__.py", "")
        z.writestr("edgebranchy-0.dist-info/METADATA", "Metadata-Version: 2.1\nName: edgebranchy\nVersion: 0\n")
    out = tmp_path / "fleet"
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_BOARDS": str(tmp_path / "boards")}
    r = run_cli("remote", tiny_artifact, "u@plain", "u@banner1", "u@evil1", "--out", out, "--wheel", wheel,
                "--remote-python", "/nonexistent/python3", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    status = json.loads((out / "status.json").read_text())
    boards = {b["name"]: b for b in status["boards"]}
    assert len(boards) == 3, boards.keys()
    for name in ("plain", "banner1", "evil1"):
        st = json.loads((out / "boards" / name / "status.json").read_text())
        steps = {s["name"]: s for s in st["steps"]}
        if name == "evil1":
            assert steps["fetch"]["status"] == "failed" and "'../../escaped.txt'" in steps["fetch"]["detail"]
            assert not (out / "boards" / "doctor.json").exists()
        else:  # the banner is skipped: the run folder arrives
            assert steps["fetch"]["status"] == "ok", (name, steps["fetch"])
            assert (out / "boards" / name / "doctor.json").is_file()
    assert not list(tmp_path.rglob("escaped.txt"))
