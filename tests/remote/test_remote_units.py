"""The parts of `remote` that need no ssh: targets, inventories, what is sent, the plan, argument checks."""
from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from eb_testutil import run_cli
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.remote.bundle import artifact_part, build_wheel, wheel_part
from edgebranchy.remote.scripts import workdir_expr
from edgebranchy.remote.ssh import SshOptions, explain_ssh_failure
from edgebranchy.remote.targets import load_inventory, parse_target, unique_names


def test_targets():
    b = parse_target("nvidia@orin1:2222")
    assert (b.user, b.host, b.port, b.name, b.destination, b.target) == \
        ("nvidia", "orin1", 2222, "orin1-2222", "nvidia@orin1", "nvidia@orin1:2222")
    v6 = parse_target("pi@[fe80::1]:22")
    assert v6.host == "fe80::1" and v6.port == 22 and v6.target == "pi@[fe80::1]:22"
    assert parse_target("lab-pi5").destination == "lab-pi5"
    for bad in ("a b", "user@", "host:99999", "x@y@z"):
        with pytest.raises(EdgeBranchyError):
            parse_target(bad)
    names = [b.name for b in unique_names([parse_target("a"), parse_target("u@a"), parse_target("a")])]
    assert names == ["a", "a-2", "a-3"]


def test_inventory_toml_and_table(tmp_path):
    t = tmp_path / "boards.toml"
    t.write_text('[defaults]\nprofile = "raspberry-pi-5"\n[[board]]\nhost = "pi@pi5"\n'
                 '[[board]]\nhost = "nvidia@orin:2200"\nprofile = "jetson-orin-nano"\nname = "orin"\nnotes = "desk"\n')
    a, b = load_inventory(t)
    assert (a.profile, a.destination, b.name, b.port, b.profile, b.notes) == \
        ("raspberry-pi-5", "pi@pi5", "orin", 2200, "jetson-orin-nano", "desk")
    t.write_text('[[board]]\nhost = "x"\ncolour = "red"\n')
    with pytest.raises(EdgeBranchyError, match="colour"):
        load_inventory(t)
    txt = tmp_path / "boards.txt"
    txt.write_text("host profile notes\n# a comment\npi@pi4  raspberry-pi-4  shelf 2, left\norin  -\n")
    a, b = load_inventory(txt, profile="auto")
    assert (a.profile, a.notes, b.profile) == ("raspberry-pi-4", "shelf 2, left", "auto")
    txt.write_text("# nothing\n")
    with pytest.raises(EdgeBranchyError, match="no boards"):
        load_inventory(txt)


def test_ssh_options_and_failures():
    argv = SshOptions(config="cfg", jump="me@gw", identity="k", options=("Compression=yes",)).argv(
        parse_target("u@h:2022"))
    assert argv[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    assert argv[-8:] == ["-i", "k", "-o", "Compression=yes", "-p", "2022", "--", "u@h"] and "-J" in argv and "-F" in argv
    assert "key login" in explain_ssh_failure("u@h: Permission denied (publickey).")
    assert "refused" in explain_ssh_failure("ssh: connect to host h port 22: Connection refused")
    assert workdir_expr("~/.edgebranchy") == '"$HOME"/.edgebranchy'
    assert workdir_expr("/data/my runs") == "'/data/my runs'"


def test_artifact_goes_without_engines(tiny_artifact, tmp_path):
    from edgebranchy.artifact.manifest import Artifact

    clean = artifact_part(tiny_artifact)
    copy = tmp_path / "tiny-artifact"
    shutil.copytree(tiny_artifact, copy)
    (copy / "engines" / "orin-x").mkdir(parents=True)
    (copy / "engines" / "orin-x" / "seg0.plan").write_bytes(b"engine built elsewhere")
    Artifact.load(copy).add_files(["engines/orin-x/seg0.plan"], {"tensorrt": {"orin-x": {"dir": "engines/orin-x"}}})
    part = artifact_part(copy)
    names = tarfile.open(fileobj=io.BytesIO(part.data)).getnames()
    assert not [n for n in names if n.startswith("engines")] and "manifest.json" in names
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(part.data)).extractfile("manifest.json").read())
    assert "tensorrt" not in manifest and not [f for f in manifest["files"] if f.startswith("engines")]
    assert part.digest == clean.digest  # engines built elsewhere do not make the board's copy stale
    (copy / "baseline.onnx").write_bytes(b"damaged")
    with pytest.raises(EdgeBranchyError):
        artifact_part(copy)


def test_wheel_digest_ignores_timestamps(tmp_path):
    w1 = build_wheel(tmp_path / "one")
    w2 = build_wheel(tmp_path / "two")
    assert wheel_part(w1).digest == wheel_part(w2).digest
    with pytest.raises(EdgeBranchyError, match="not a wheel|cannot read"):
        wheel_part(tmp_path / "one" / "src" / "pyproject.toml")


def test_dry_run_and_argument_errors(tiny_artifact, tmp_path):
    r = run_cli("remote", tiny_artifact, "nvidia@orin:2222", "pi5", "-J", "me@gw", "--dry-run",
                "--bench-args=--samples 100 --trials 2")
    assert r.returncode == 0, r.stderr
    assert "ssh -o BatchMode=yes" in r.stdout and "-J me@gw" in r.stdout and "-p 2222 -- nvidia@orin" in r.stdout
    assert "--samples 100 --trials 2" in r.stdout and "orin-2222:" in r.stdout and "pi5:" in r.stdout
    r = run_cli("remote", tiny_artifact, "pi5", "--dry-run", "--bench-args=--sampels 100")
    assert r.returncode == 2 and "--bench-args" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("remote", tiny_artifact, "pi5", "--dry-run", "--bench-args=--out x.json")
    assert r.returncode == 2 and "--out" in r.stderr
    r = run_cli("remote", tiny_artifact, "--dry-run")
    assert r.returncode == 2 and "no boards" in r.stderr
    r = run_cli("remote", tiny_artifact, "pi5", "--only", "orin", "--dry-run")
    assert r.returncode == 2 and "no board named orin" in r.stderr
    r = run_cli("remote", tmp_path, "pi5", "--dry-run")
    assert r.returncode == 2 and "manifest" in r.stderr


FAKE_SSH = """#!/bin/sh
# records its argv, one word per line, and fails as a refused connection would
for a in "$@"; do printf '%s\\n' "$a"; done >> "$SSH_ARGV_LOG"
echo "ssh: connect to host x port 22: Connection refused" >&2
exit 255
"""


def _fake_ssh(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(FAKE_SSH)
    (bindir / "ssh").chmod(0o755)
    log = tmp_path / "argv.log"
    import os
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "SSH_ARGV_LOG": str(log)}, log


def test_hostile_inventory_never_reaches_ssh(tiny_artifact, tmp_path):
    """An inventory host/user starting with '-' was passed to ssh as an option (-oProxyCommand runs a command)."""
    env, log = _fake_ssh(tmp_path)
    for entry in ('host = "-oProxyCommand=touch${IFS}pwned@x"', 'host = "-oProxyCommand=x"',
                  'host = "pi5"\nprofile = "--force"', 'host = "pi5"\nworkdir = "-rf"'):
        inv = tmp_path / "boards.toml"
        inv.write_text(f"[[board]]\n{entry}\n")
        r = run_cli("remote", tiny_artifact, "--inventory", inv, "--out", tmp_path / "out", env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (entry, r.stderr)
        assert ("board" in r.stderr or "target" in r.stderr) and not log.exists(), (entry, r.stderr)
    for bad in ("-oProxyCommand=x", "-x@h", "u@-h"):
        with pytest.raises(EdgeBranchyError):
            parse_target(bad)


def test_ssh_options_end_before_the_destination(tiny_artifact, tmp_path):
    """Every ssh call ends its options with `--` before the destination (recorded through a fake ssh on PATH)."""
    env, log = _fake_ssh(tmp_path)
    r = run_cli("remote", tiny_artifact, "u@board1:2022", "--out", tmp_path / "out", env=env)
    assert r.returncode != 0 and log.exists(), r.stderr
    words = log.read_text().splitlines()
    i = words.index("u@board1")
    assert words[i - 1] == "--" and words[i - 3:i - 1] == ["-p", "2022"], words
    assert SshOptions().argv(parse_target("h"))[-2:] == ["--", "h"]
