"""`edgebranchy remote` end to end against two real OpenSSH servers on 127.0.0.1 (the CPU path).

The inventory has four boards: two good ones (one per server), one whose port
refuses connections, and one whose profile does not exist there (its bench
fails). Then: a second run that reuses everything on the board, and a run
interrupted by Ctrl-C that must leave the local side as it was.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from loopback_sshd import board_python

from eb_testutil import ROOT
from edgebranchy.report import load_results

BENCH = "--power estimate --dataset synthetic --samples 20 --trials 1 --warmup 1 --min-window 0 --idle 0 " \
        "--backend onnxruntime"


def _inventory(tmp, loopback):
    wd = tmp / "boards-fs"  # both "boards" are this machine: each entry gets its own work directory
    text = "\n".join(f'[[board]]\nhost = "{host}"\nname = "{name}"\nprofile = "{profile}"\nworkdir = "{wd / name}"\n'
                     for name, host, profile in [("board-a", "board-a", "x86-cpu"), ("board-b", "board-b", "x86-cpu"),
                                                 ("board-down", "board-down", "auto"),
                                                 ("board-bad", "board-b", "no-such-board")])
    p = tmp / "boards.toml"
    p.write_text('[defaults]\nnotes = "loopback"\n' + text)
    return p


def _cmd(artifact, inventory, loopback, out, *extra, bench=BENCH):
    # --pip-args=--no-index: the boards' dependencies come from PYTHONPATH (see loopback_sshd); never the network
    return [sys.executable, "-m", "edgebranchy", "remote", str(artifact), "--inventory", str(inventory),
            "-F", str(loopback.config), "--remote-python", board_python(), "--pip-args=--no-index",
            f"--bench-args={bench}", "--out", str(out), *extra]


def _run(cmd, timeout=1200):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _boards(out):
    return {b["name"]: b for b in json.loads((out / "status.json").read_text())["boards"]}


def _steps(board):
    return {s["name"]: s["status"] for s in board["steps"]}


@pytest.fixture(scope="module")
def fleet(tiny_artifact, loopback, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    inv = _inventory(tmp, loopback)
    out = tmp / "out"
    first = _run(_cmd(tiny_artifact, inv, loopback, out))
    return tmp, inv, out, first


def test_first_run_two_boards_ok_one_refused_one_failed_bench(fleet, loopback):
    tmp, inv, out, r = fleet
    assert r.returncode == 1, r.stdout + r.stderr  # two boards did not finish
    assert "Traceback" not in r.stderr
    boards = _boards(out)
    for name in ("board-a", "board-b"):
        b = boards[name]
        assert b["status"] == "ok", b
        assert _steps(b) == {"connect": "ok", "artifact": "copied", "profiles": "copied", "wheel": "copied",
                             "venv": "created", "doctor": _steps(b)["doctor"], "engines": "skipped", "bench": "ok",
                             "fetch": "ok"}
        assert _steps(b)["doctor"] in ("ok", "unavailable")
        bench = next(s for s in b["steps"] if s["name"] == "bench")
        assert bench["detail"].startswith("branchy is "), bench  # the board's verdict, in the summary
        res = load_results(out / "boards" / name / "results.json")["runs"][0]  # validated against the results schema
        assert (out / "boards" / name / "results.json.latencies.npz").is_file()  # the side file came back too
        assert res["environment"]["profile"] == "x86-cpu"
        assert (out / "boards" / name / "results.json.jsonl").read_text().count('"type": "trial"') == 2
    down = boards["board-down"]
    assert down["status"] == "unreachable" and "refused" in down["error"]
    bad = boards["board-bad"]
    assert bad["status"] == "failed" and bad["failed_step"] == "bench" and "no-such-board" in bad["error"]
    assert json.loads((out / "boards" / "board-bad" / "status.json").read_text())["status"] == "failed"
    # the table the user sees, and the rerun hint
    table = r.stdout[r.stdout.index("board "):]
    assert any(line.split()[:1] == ["board-down"] and "unreachable" in line for line in table.splitlines())
    assert any(line.split()[:1] == ["board-bad"] and "failed at bench" in line for line in table.splitlines())
    assert "--only board-down,board-bad" in r.stdout
    # one report over the two boards that finished
    md = (out / "report" / "report.md").read_text()
    assert "R1 board-a" in md and "R2 board-b" in md and (out / "report" / "report.html").is_file()
    assert not [p for p in (out / "boards").iterdir() if p.name.startswith(".")]  # no temp folders left


def test_the_board_runs_its_own_installed_copy(fleet, loopback):
    tmp, *_ = fleet
    wd = tmp / "boards-fs" / "board-a"
    r = subprocess.run(["ssh", "-F", str(loopback.config), "-o", "BatchMode=yes", "board-a",
                        f"{wd}/venv/bin/python -c 'import edgebranchy; print(edgebranchy.__file__)'"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().startswith(str(wd / "venv")), r.stdout + r.stderr
    # the artifact went without engines/, the digest beside it
    assert (wd / "artifacts" / "tiny-artifact" / "manifest.json").is_file()
    assert (wd / "artifacts" / "tiny-artifact.digest").read_text()


def test_second_run_reuses_and_keeps_the_boards_not_run(fleet, tiny_artifact, loopback):
    tmp, inv, out, first = fleet
    run1 = json.loads((out / "boards" / "board-b" / "results.json").read_text())
    r = _run(_cmd(tiny_artifact, inv, loopback, out, "--only", "board-a"))
    assert r.returncode == 0, r.stdout + r.stderr
    a = _boards(out)["board-a"]
    assert _steps(a) == {**_steps(a), "artifact": "reused", "profiles": "reused", "wheel": "reused",
                         "venv": "reused", "bench": "ok", "fetch": "ok"}
    assert "copied" not in r.stdout and "created" not in r.stdout
    # board-b was not run: its results from the first run are kept and still in the report
    assert _boards(out)["board-b"]["status"] == "kept"
    assert any(line.startswith("board-b") and "not run (--only)" in line for line in r.stdout.splitlines())
    assert json.loads((out / "boards" / "board-b" / "results.json").read_text()) == run1
    md = (out / "report" / "report.md").read_text()
    assert "R1 board-a" in md and "R2 board-b" in md


def test_interrupted_run_leaves_the_local_side_intact(fleet, tiny_artifact, loopback):
    tmp, inv, out, _ = fleet
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    cmd = _cmd(tiny_artifact, inv, loopback, out, "--only", "board-b",
               bench=BENCH.replace("--min-window 0", "--min-window 15"))
    # SIGINT as in a terminal: a background job inherits it ignored, so put the default back for the command
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    deadline = time.monotonic() + 600
    for line in p.stdout:
        seen.append(line)
        if line.startswith("[board-b] engines:") or time.monotonic() > deadline:
            break
    time.sleep(2)  # the bench is running on the board now
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C reaches the foreground group (each ssh runs in a session of its own)
    rest, _ = p.communicate(timeout=120)
    text = "".join(seen) + rest
    assert p.returncode == 130, text
    assert "--only board-b" in text and "Traceback" not in text
    after = {q.relative_to(out): q.read_bytes() for q in out.rglob("*") if q.is_file()}
    assert after == before  # status.json, the report and every board folder as they were
