"""The one output gate (issue 29, part B): symlinks, the kind of what is there, one writer per output, `--force`
replacing only once the new output is complete, SIGTERM cleaned up as SIGINT is."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.kinds import what_is
from edgebranchy.util.locks import lock_path, output_lock
from edgebranchy.util.outputs import check_output

from eb_testutil import ROOT, run_cli_with
from rel_util import cli, one_error_line, tree


@pytest.fixture
def ckpt(tiny_calibrated, tmp_path):
    """A private copy of the calibrated checkpoint, alone in its folder."""
    (tmp_path / "runs").mkdir()
    return Path(shutil.copy(tiny_calibrated, tmp_path / "runs" / "m.pt"))


def _bench_args(art, out, *extra):
    return ["bench", art, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic", "--samples", "8",
            "--trials", "2", "--warmup", "1", "--warmup-max", "0", "--min-window", "0", "--idle", "0",
            "--out", out, *extra]


# -- symlinks ------------------------------------------------------------------------------------------------------

def test_out_through_a_dangling_symlink_is_refused(art, tmp_path):
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "elsewhere" / "target.json")
    with pytest.raises(EdgeBranchyError, match="symbolic link"):
        check_output(link, [], "results")
    rc, _, err = cli(*_bench_args(art, link))
    assert rc == 2 and "symbolic link" in one_error_line(err, "bench")
    assert not (tmp_path / "elsewhere").exists() and os.path.islink(link)


def test_bench_force_refuses_a_symlinked_side_file(art, tmp_path):
    victim = tmp_path / "precious.npz"
    victim.write_bytes(b"the user's file")
    out = tmp_path / "r.json"
    (tmp_path / "r.json.latencies.npz").symlink_to(victim)
    before = tree(tmp_path)
    rc, _, err = cli(*_bench_args(art, out, "--force"))
    line = one_error_line(err, "bench")
    assert rc == 2 and "symbolic link" in line and "latencies" in line
    assert tree(tmp_path) == before


# -- the kind of what is there ---------------------------------------------------------------------------------------

def test_train_does_not_replace_a_checkpoint_without_force(ckpt):
    before = ckpt.read_bytes()
    rc, out, err = cli("train", "--model", "b-lenet", "--dataset", "synthetic", "--max-steps", "1", "--out", ckpt)
    line = one_error_line(err, "train")
    assert rc == 2 and "--force" in line and "checkpoint" in line and out == ""
    assert ckpt.read_bytes() == before


def test_doctor_out_does_not_replace_a_checkpoint(ckpt):
    before = ckpt.read_bytes()
    rc, out, err = cli("doctor", "--out", ckpt, "--power-sample", "0")
    assert rc == 2 and "checkpoint" in one_error_line(err, "doctor")
    assert ckpt.read_bytes() == before


def test_doctor_out_rewrites_its_own_report(tmp_path):
    out = tmp_path / "doctor.json"
    assert cli("doctor", "--out", out, "--power-sample", "0")[0] in (0, 1)
    assert what_is(out) == "doctor"
    assert cli("doctor", "--out", out, "--power-sample", "0")[0] in (0, 1)


def test_remote_out_is_not_a_folder_that_merely_holds_a_status_json(art, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "status.json").write_text(json.dumps({"status": "my own notes"}))
    (mine / "todo.txt").write_text("the user's file")
    before = tree(mine)
    rc, _, err = cli("remote", art, "u@board1", "--out", mine, "--wheel", tmp_path / "none.whl")
    assert rc == 2 and "remote" in one_error_line(err, "remote") and str(mine) in err
    assert tree(mine) == before


def test_what_a_remote_run_leaves_is_its_own_kind(tmp_path):
    fleet = tmp_path / "fleet"
    (fleet / "boards" / "a").mkdir(parents=True)
    assert what_is(fleet) == "fleet"  # a first run interrupted before its status.json
    (fleet / "status.json").write_text(json.dumps({"schema": "edgebranchy.fleet", "run": "x", "boards": []}))
    assert what_is(fleet) == "fleet"
    assert check_output(fleet, [], "fleet", force=True) == fleet
    (fleet / "notes.txt").write_text("x")
    (fleet / "status.json").write_text(json.dumps({"status": "mine"}))
    assert what_is(fleet) == "other-dir"


def test_calibrate_artifact_batch_size_past_its_bound_rewrites_nothing(art):
    from edgebranchy.calibration import calibrate_artifact

    before = tree(art)
    rc, out, err = cli("calibrate", art, "--in-place", "--batch-size", str(10 ** 12))
    assert rc == 2 and "--batch-size" in one_error_line(err) and "at most" in err and out == ""
    with pytest.raises(EdgeBranchyError, match="batch_size"):
        calibrate_artifact(art, batch_size=10 ** 12, log=lambda s: None)
    assert tree(art) == before


# -- one writer per output ------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from edgebranchy.util.locks import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder():
    """hold(path): another process holds the output lock of `path` until the test ends (or it is killed)."""
    procs = []

    def hold(path):
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def test_lock_refuses_a_second_writer_and_a_dead_holder_frees_it(tmp_path, holder):
    out = tmp_path / "r.json"
    p = holder(out)
    with pytest.raises(EdgeBranchyError, match=f"pid {p.pid}"):
        with output_lock(out):
            pass
    p.kill()  # SIGKILL: no clean-up ran, the lock file stays, stale
    p.wait()
    assert lock_path(out).exists()
    with output_lock(out):
        with output_lock(out):  # re-entrant in one process
            pass
    assert not lock_path(out).exists()


def test_two_exports_to_the_same_new_out(ckpt, tmp_path, holder):
    out = tmp_path / "a"
    holder(out)
    rc, _, err = cli("export", ckpt, "--out", out)
    assert rc == 2 and "being written by edgebranchy (pid" in one_error_line(err, "export")
    assert not out.exists()


def test_bench_and_resume_while_another_bench_writes(art, tmp_path, holder):
    out = tmp_path / "r.json"
    log = tmp_path / "r.json.jsonl"
    log.write_text(json.dumps({"type": "start", "environment": {}, "config": {}}) + "\n")  # the winner's log
    holder(out)
    before = tree(tmp_path)
    rc, _, err = cli(*_bench_args(art, out))  # refused by the check already: that log is an earlier run's
    assert rc == 2 and "--resume" in one_error_line(err, "bench") and tree(tmp_path) == before
    for extra in (("--resume",), ("--force",)):  # the check passes: the lock refuses
        rc, _, err = cli(*_bench_args(art, out, *extra))
        assert rc == 2 and "being written" in one_error_line(err, "bench"), extra
        assert tree(tmp_path) == before


def test_two_calibrations_of_one_artifact(art, holder):
    holder(art)
    before = tree(art)
    rc, _, err = cli("calibrate", art, "--in-place", "--dataset", "synthetic")
    assert rc == 2 and "being written" in one_error_line(err, "calibrate")
    assert tree(art) == before


def test_two_trainings_on_one_out(tmp_path, holder):
    out = tmp_path / "m.pt"
    holder(out)
    rc, _, err = cli("train", "--model", "b-lenet", "--dataset", "synthetic", "--max-steps", "1", "--out", out)
    assert rc == 2 and "being written" in one_error_line(err, "train")
    assert not out.exists() and not (tmp_path / "m.pt.resume").exists()


# -- --force replaces only a complete output; SIGTERM as SIGINT --------------------------------------------------------

def _signal_on(where: str, sig: str) -> str:
    """A prelude: `where` (module:function) sends `sig` to this process when it is called."""
    mod, fn = where.split(":")
    return textwrap.dedent(f"""
        import os, signal, importlib
        _m = importlib.import_module({mod!r})
        _f = getattr(_m, {fn!r})
        def _send(*a, **k):
            os.kill(os.getpid(), signal.{sig})
            return _f(*a, **k)
        setattr(_m, {fn!r}, _send)
        """)


def test_interrupted_forced_bench_keeps_the_earlier_results_and_log(art, tmp_path):
    out = tmp_path / "r.json"
    assert cli(*_bench_args(art, out))[0] == 0
    before = tree(tmp_path)
    assert {"r.json", "r.json.jsonl", "r.json.latencies.npz"} <= set(before)
    prelude = textwrap.dedent("""
        import os, signal
        from edgebranchy.bench.session import BenchSession
        _init = BenchSession.__init__
        def _patched(self, *a, **kw):
            _init(self, *a, **kw)
            self.on_trial = lambda rec: os.kill(os.getpid(), signal.SIGTERM)
        BenchSession.__init__ = _patched
        """)
    for sig_prelude in (prelude, prelude.replace("SIGTERM", "SIGINT")):
        r = run_cli_with(sig_prelude, *_bench_args(art, out, "--force"))
        assert r.returncode == 130 and "interrupted" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert tree(tmp_path) == before


def test_forced_bench_replaces_all_three_files(art, tmp_path):
    out = tmp_path / "runs" / "r.json"
    assert cli(*_bench_args(art, out))[0] == 0
    first = json.loads(out.read_text())
    assert cli(*_bench_args(art, out, "--force"))[0] == 0
    names = {p.name for p in out.parent.iterdir()}
    assert names == {"r.json", "r.json.jsonl", "r.json.latencies.npz"}, names
    lines = [json.loads(x) for x in (out.parent / "r.json.jsonl").read_text().splitlines()]
    assert [r["type"] for r in lines].count("start") == 1 and lines[-1]["type"] == "done"
    assert json.loads(out.read_text())["latencies_sha256"] != first["latencies_sha256"]


def test_export_interrupted_between_its_two_renames_leaves_an_artifact(tmp_path, monkeypatch):
    """Where the atomic exchange is not available, the two renames are one step for SIGINT/SIGTERM."""
    from edgebranchy.util import files

    out = tmp_path / "a"
    files.atomic_write_dir(out, lambda d: (d / "manifest.json").write_text("old"))
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    real = os.replace

    def replace(a, b):
        real(a, b)
        if str(b).endswith("/a") and ".a.old." in str(b):  # the old one moved aside: Ctrl-C now
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_dir(out, lambda d: (d / "manifest.json").write_text("new"), replace=True)
    assert (out / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_forced_directory_swap_is_one_step_where_linux_has_it(tmp_path):
    from edgebranchy.util import files

    out = tmp_path / "a"
    files.atomic_write_dir(out, lambda d: (d / "x").write_text("old"))
    files.atomic_write_dir(out, lambda d: (d / "x").write_text("new"), replace=True)
    assert (out / "x").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_interrupted_export_leaves_no_temporary_folder(ckpt, tmp_path, sig):
    out = tmp_path / "art"
    r = run_cli_with(_signal_on("edgebranchy.export.onnx:_write_baseline", sig), "export", ckpt, "--out", out)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_interrupted_calibrate_out_leaves_no_checkpoint_copy(ckpt, sig):
    r = run_cli_with(_signal_on("edgebranchy.calibration:calibrate_checkpoint", sig),
                     "calibrate", ckpt, "--out", ckpt.parent / "new.pt", "--thresholds", "0.5")
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["m.pt"]


def test_interrupted_forced_quickstart_puts_the_earlier_run_back(tmp_path):
    out = tmp_path / "q"
    (out / "report").mkdir(parents=True)
    (out / "edgebranchy-quickstart.json").write_text(json.dumps({"schema": "edgebranchy.quickstart",
                                                                 "state": "done"}))
    (out / "report" / "report.md").write_text("the earlier report")
    (out / "results.json").write_text(json.dumps({"schema": "edgebranchy.results"}))
    (out / "results.json.latencies.npz").write_bytes(b"earlier latencies")
    (out / "notes.txt").write_text("the user's file")
    before = tree(out)
    r = run_cli_with(_signal_on("edgebranchy.train.trainer:Trainer", "SIGTERM"),
                     "quickstart", "--out", out, "--force", "--dataset", "synthetic", "--epochs", "1",
                     "--profile", "x86-cpu")
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert tree(out) == before


def test_predict_out_replaces_only_earlier_answers(art, tmp_path):
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"schema": "edgebranchy.results", "runs": []}))
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own,table\n")
    before = tree(tmp_path)
    for out in (res, notes):
        rc, _, err = cli("predict", art, "--images", tmp_path / "none.png", "--out", out)
        assert rc == 2 and "predict" in one_error_line(err, "predict") and str(out) in err
    assert tree(tmp_path) == before
    csv = tmp_path / "answers.csv"
    csv.write_text("file,label,class_index,exit,entropy\nx.png,a,0,0,0.1\n")
    assert what_is(csv) == "predictions"
    doc = tmp_path / "answers.json"
    doc.write_text(json.dumps({"schema": "edgebranchy.predictions", "predictions": []}))
    assert what_is(doc) == "predictions" and check_output(doc, [art], "predictions", force=True) == doc
