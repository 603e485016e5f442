"""Bench sweeps (batch sizes x backends x forms into one results file), --resume after a kill, output modes."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from edgebranchy.artifact.latencies import load_latencies
from edgebranchy.artifact.results import load_runs_doc, validate_results
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.bench.plan import plan_runs

from eb_testutil import run_cli, run_cli_with, sigkill_after_trial

FAST = ["--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic", "--samples", "12", "--trials", "2",
        "--warmup", "1", "--warmup-max", "0", "--min-window", "0", "--idle", "0", "--backend", "onnxruntime"]


def _kill_in(run: str, trial: int, variant: str) -> str:
    """A prelude: SIGKILL the bench once run `run`'s trial (trial, variant) is in the trial log."""
    return sigkill_after_trial(trial, variant, run=run)


def test_plan_skips_forms_at_larger_batches_and_says_why():
    specs, skipped = plan_runs([1, 8], ["onnxruntime", "torch"], ["segments", "single-graph"])
    assert [(s.id, s.batch_size, s.backend, s.form) for s in specs] == [
        ("r1", 1, "onnxruntime", "segments"), ("r2", 1, "onnxruntime", "single-graph"),
        ("r3", 1, "torch", "segments"), ("r4", 1, "torch", "single-graph"),
        ("r5", 8, "onnxruntime", "segments"), ("r6", 8, "torch", "segments")]
    assert len(skipped) == 2 and all("batch 1 only" in line for line in skipped)
    specs, skipped = plan_runs(1, "onnxruntime", ["auto", "single-graph"], single_graph=False)
    assert [s.form for s in specs] == ["auto"] and "no single graph" in skipped[0]
    with pytest.raises(EdgeBranchyError, match="not a form"):
        plan_runs(1, "onnxruntime", ["fastest"])


def test_sweep_into_one_file_with_distinct_labels(tiny_artifact, tmp_path):
    out = tmp_path / "s.json"
    # an idle reading (not 0 s) so that energy per exit is computed for every run, each at its own batch size
    r = run_cli("bench", tiny_artifact, *FAST, "--idle", "0.2", "--min-window", "0.3", "--batch-size", "1,4",
                "--form", "segments,single-graph", "--out", out)
    assert r.returncode == 0, r.stderr
    runs = load_runs_doc(out)
    assert all("energy_per_exit" in x["variants"]["branchy"] for x in runs), r.stderr
    got = [(x["config"]["batch_size"], x["config"]["form"], x["environment"]["batch1_form"]) for x in runs]
    assert got == [(1, "segments", "segments"), (1, "single-graph", "single-graph"), (4, "segments", "segments")]
    assert [x["id"] for x in runs] == ["r1", "r2", "r3"] and len({x["label"] for x in runs}) == 3
    assert "batch 4 · onnxruntime · single-graph skipped" in r.stdout + r.stderr
    assert r.stderr.count(" done (batch") == 3  # one short line per finished run
    for x in runs:  # every run's raw latencies are in the one side file
        lat = load_latencies(out, x["id"])
        assert lat["baseline"].size == x["variants"]["baseline"]["latency_ms"]["count"] > 0
    # single graph and segments give the same answers on the same samples
    assert runs[0]["variants"]["branchy"]["exit_counts"] == runs[1]["variants"]["branchy"]["exit_counts"]
    from edgebranchy.report.runs import load_runs

    loaded = load_runs([out])
    assert [x.label for x in loaded] == [x["label"] for x in runs] and all(x.has_latencies for x in loaded)
    assert len({x.short_label for x in loaded}) == 3


def test_resume_after_kill_keeps_finished_runs_and_trials(tiny_artifact, tmp_path):
    out = tmp_path / "k.json"
    args = ["bench", tiny_artifact, *FAST, "--batch-size", "1,4", "--form", "segments", "--out", out]
    r = run_cli_with(_kill_in("r2", 0, "branchy"), *args)
    assert r.returncode == -9, r.stderr
    assert not out.exists()
    log = [json.loads(line) for line in (tmp_path / "k.json.jsonl").read_text().splitlines()]
    r1 = next(l["result"] for l in log if l["type"] == "run")
    before = {(l["trial"], l["variant"]): l["latency_ms"] for l in log if l["type"] == "trial" and l["run"] == "r2"}
    assert sorted(before) == [(0, "baseline"), (0, "branchy")]
    # a plain rerun is refused and names --resume; a resume with other settings says what differs
    r = run_cli(*args)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = run_cli(*[a if a != "2" else "3" for a in args], "--resume")
    assert r.returncode == 2 and "config.trials: 2 in the log, 3 now" in r.stderr, r.stderr
    r = run_cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    doc = validate_results(json.loads(out.read_text()), str(out))
    assert [x["id"] for x in doc["runs"]] == ["r1", "r2"]
    kept = doc["runs"][0]
    assert kept["variants"]["branchy"]["latency_ms"]["p50"] == r1["variants"]["branchy"]["latency_ms"]["p50"]
    assert kept["created"] == r1["created"]  # not measured again
    r1_trials = sorted((l for l in log if l["type"] == "trial" and l["run"] == "r1"), key=lambda l: l["trial"])
    for name in ("baseline", "branchy"):  # its raw latencies are its logged trials' (the log holds them once)
        want = [x for l in r1_trials if l["variant"] == name for x in l["latency_ms"]]
        assert load_latencies(out, "r1")[name].tolist() == want
    assert "samples" not in r1["variants"]["baseline"]["latency_ms"]
    for run in doc["runs"]:
        for v in run["variants"].values():
            assert (v["energy"] or v["energy_refused"])["trials_total"] == 2  # every trial is there
    raw = load_latencies(out, "r2")
    # the kept trials' latencies come first in the run's latencies, the new ones after them
    assert np.allclose(raw["baseline"][:len(before[(0, "baseline")])], before[(0, "baseline")])
    full = [json.loads(line) for line in (tmp_path / "k.json.jsonl").read_text().splitlines()]
    r2 = [(l["trial"], l["variant"]) for l in full if l["type"] == "trial" and l["run"] == "r2"]
    assert sorted(r2) == [(0, "baseline"), (0, "branchy"), (1, "baseline"), (1, "branchy")]
    assert full[-1]["type"] == "done"
    r = run_cli(*args, "--resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr


def test_report_and_loader_refuse_a_trial_log_with_the_way_out(tiny_artifact, tmp_path):
    out = tmp_path / "j.json"
    r = run_cli_with(_kill_in("r1", 0, "baseline"), "bench", tiny_artifact, *FAST, "--out", out)
    assert r.returncode == -9
    from edgebranchy.report.runs import load_runs

    with pytest.raises(EdgeBranchyError, match="trial log of an unfinished bench.*--resume"):
        load_runs([tmp_path / "j.json.jsonl"])
    r = run_cli("report", tmp_path / "j.json.jsonl", "--out", tmp_path / "rep")
    assert r.returncode == 2 and "--resume" in r.stderr


def test_quiet_and_json_output(tiny_artifact, tmp_path):
    out = tmp_path / "q.json"
    r = run_cli("bench", tiny_artifact, *FAST, "--batch-size", "4", "--quiet", "--out", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"results: {out}" and "latency gain" not in r.stdout
    assert r.stdout.startswith("branchy is ") and len(r.stdout.strip().splitlines()) == 2  # verdict, results
    assert "warm-up" not in r.stderr and "power:" not in r.stderr
    out = tmp_path / "j.json"
    r = run_cli("bench", tiny_artifact, *FAST, "--batch-size", "2,4", "--json", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # the whole of stdout: no verdict line before it
    assert summary["results"] == str(out) and [x["batch_size"] for x in summary["runs"]] == [2, 4]
    doc = json.loads(out.read_text())
    for row, run in zip(summary["runs"], doc["runs"]):
        assert row["label"] == run["label"]
        assert row["branchy"]["p50_ms"] == run["variants"]["branchy"]["latency_ms"]["p50"]
        assert row["speedup_p50"] == pytest.approx(row["baseline"]["p50_ms"] / row["branchy"]["p50_ms"])


def test_side_file_missing_or_tampered(tiny_artifact, tmp_path):
    out = tmp_path / "t.json"
    assert run_cli("bench", tiny_artifact, *FAST, "--batch-size", "4", "--out", out).returncode == 0
    side = tmp_path / "t.json.latencies.npz"
    data = side.read_bytes()
    side.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(EdgeBranchyError, match="t.json.latencies.npz.*sha256"):
        load_latencies(out, "r1")
    side.unlink()
    with pytest.raises(EdgeBranchyError, match="t.json.latencies.npz.*missing"):
        load_latencies(out, "r1")
    from edgebranchy.report.runs import load_runs

    (run,) = load_runs([out])  # the report still loads: every statistic is in the results file
    assert not run.has_latencies and "missing" in run.notes[0]


def test_a_person_at_a_terminal_sees_a_line_at_once(tmp_path):
    """With stderr on a terminal, bench says what it is loading before any import or data (errors elsewhere
    stay one line)."""
    import os
    import pty
    import subprocess
    import sys

    from eb_testutil import ROOT

    master, slave = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "edgebranchy", "bench", str(tmp_path / "nothing"), "--profile",
                            "x86-cpu", "--out", str(tmp_path / "r.json")], stdout=subprocess.PIPE, stderr=slave,
                           cwd=ROOT, timeout=120)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    lines = err.decode().splitlines()
    assert r.returncode == 2 and lines[0].startswith("bench: loading") and "nothing" in lines[-1]


def test_resume_after_ctrl_c(tiny_artifact, tmp_path):
    """Ctrl-C (SIGINT) in the middle of the trials: the log keeps what finished, --resume completes it."""
    out = tmp_path / "c.json"
    args = ["bench", tiny_artifact, *FAST, "--batch-size", "2", "--out", out]
    r = run_cli_with(_kill_in("r1", 0, "branchy").replace("SIGKILL", "SIGINT"), *args)
    assert r.returncode != 0 and not out.exists()
    kept = [json.loads(line) for line in (tmp_path / "c.json.jsonl").read_text().splitlines()]
    assert [(l["trial"], l["variant"]) for l in kept if l["type"] == "trial"] == [(0, "baseline"), (0, "branchy")]
    # issue 24 item 6: Ctrl-C says where the trials are and the command that continues; that command works
    [said] = [ln for ln in r.stderr.splitlines() if "continue this bench with: " in ln]
    resume = shlex.split(said.split("continue this bench with: ", 1)[1])
    assert resume[:2] == ["edgebranchy", "bench"] and resume[-1] == "--resume" and "c.json.jsonl" in said
    r = run_cli(*resume[1:])
    assert r.returncode == 0, r.stderr
    again = run_cli(*args)  # the same command once more: a finished bench, not one to --resume
    assert again.returncode == 2 and "are a finished bench: choose a new --out" in again.stderr, again.stderr
    assert "--resume" not in again.stderr
    (run,) = load_runs_doc(out)
    assert all((v["energy"] or v["energy_refused"])["trials_total"] == 2 for v in run["variants"].values())
    assert "resume: 0 of 1 runs finished, 2 trials of the unfinished one kept" in r.stderr


def test_sweep_over_backends_gives_each_its_own_flags(tiny_artifact, tiny_calibrated, tmp_path):
    out = tmp_path / "b.json"
    fast = [a for a in FAST if a not in ("--backend", "onnxruntime")]
    r = run_cli("bench", tiny_artifact, *fast, "--backend", "onnxruntime,torch", "--batch-size", "4",
                "--checkpoint", tiny_calibrated, "--threads", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    runs = load_runs_doc(out)
    assert [x["environment"]["backend"] for x in runs] == ["onnxruntime", "torch"]
    assert "onnxruntime/" in runs[0]["label"] and "torch/" in runs[1]["label"]
    assert runs[1]["environment"]["backend_options"] != runs[0]["environment"]["backend_options"]
    r = run_cli("bench", tiny_artifact, *FAST, "--checkpoint", tiny_calibrated, "--out", tmp_path / "x.json")
    assert r.returncode == 2 and "--checkpoint is an option of the torch backend" in r.stderr


def test_sweep_refuses_a_backend_it_cannot_open_before_measuring(tiny_artifact, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the sweep could open it")
    out = tmp_path / "t.json"
    fast = [a for a in FAST if a not in ("--backend", "onnxruntime")]
    r = run_cli("bench", tiny_artifact, *fast, "--backend", "onnxruntime,tensorrt", "--out", out)
    assert r.returncode == 2 and "TensorRT" in r.stderr, r.stderr
    assert " done (batch" not in r.stderr and "warm-up" not in r.stderr  # refused before run r1 measured anything
    assert not out.exists() and not out.with_name("t.json.jsonl").exists()
