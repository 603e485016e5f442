"""`edgebranchy --help`, `models`, `train --dry-run` and the train/models user errors.

The main cases run as a user runs them, each in its own interpreter (started together, a few at a
time, once per module: most of their time is importing torch). The other user errors go through
`edgebranchy.cli.main` in this process, where a traceback would be an exception escaping main.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OK = {
    "help": ["--help"],
    "models-lenet": ["models", "b-lenet"],
    "dry-run": ["train", "--dry-run", "--dataset", "synthetic", "--out", "{tmp}/never.pt"],
}
OK_IN_PROCESS = {
    "models-resnet20-gray": ["models", "b-resnet", "--depth", "20", "--in-channels", "1", "--input-size", "28"],
    "dry-run-resnet": ["train", "--dry-run", "--dataset", "synthetic", "--model", "b-resnet", "--depth", "20"],
}

# Every train command writes (if it wrongly trains at all) into the test's directory, on a few
# samples for a step or two, so a user error that slips through costs seconds and leaves no file behind.
SAFE = ["--out", "{tmp}/x.pt", "--samples", "200", "--max-steps", "1", "--quiet"]

# (argv, a phrase the one stderr line must hold); all run in process, these also as subprocesses
SUBPROCESS_ERRORS = {"unknown-model", "missing-data-dir"}
ERRORS = {
    "unknown-model": (["train", "--model", "b-vgg", "--dataset", "synthetic", *SAFE], "unknown model 'b-vgg'"),
    "unknown-model-dry": (["train", "--dry-run", "--model", "b-vgg", "--dataset", "synthetic"], "unknown model"),
    "unknown-dataset": (["train", "--dataset", "imagenet", *SAFE], "unknown dataset 'imagenet'"),
    "depth-with-lenet": (["train", "--model", "b-lenet", "--depth", "20", "--dataset", "synthetic", *SAFE],
                         "--depth applies to b-resnet only"),
    "depth-zero-resnet": (["train", "--dry-run", "--model", "b-resnet", "--depth", "0", "--dataset", "synthetic"],
                          "6n+2"),
    "negative-epochs": (["train", "--epochs", "-1", "--dataset", "synthetic", *SAFE], "--epochs: must be a whole number >= 1"),
    "zero-epochs": (["train", "--epochs", "0", "--dataset", "synthetic", *SAFE], "--epochs: must be a whole number >= 1"),
    "zero-lr": (["train", "--lr", "0", "--dataset", "synthetic", *SAFE], "--lr: must be a finite number > 0"),
    "zero-batch": (["train", "--batch-size", "0", "--dataset", "synthetic", *SAFE], "--batch-size: must be a whole"),
    "negative-batch": (["train", "--batch-size", "-8", "--dataset", "synthetic", *SAFE],
                       "--batch-size: must be a whole number >= 1"),
    "one-beta": (["train", "--betas", "0.9", "--dataset", "synthetic", *SAFE], "two numbers"),
    "missing-data-dir": (["train", "--dataset", "fashion-mnist", "--data-dir", "{tmp}/no-such-dir", *SAFE],
                         "data directory not found"),
    "missing-cifar-dir": (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/no-such-dir", "--dry-run"],
                          "not found"),
    "val-size-too-big": (["train", "--dry-run", "--dataset", "synthetic", "--val-size", "5000"], "validation size"),
    "exit-weights-count": (["train", "--dataset", "synthetic", "--exit-weights", "1,1,1", *SAFE], "needs 2 values"),
    "models-unknown": (["models", "b-vgg"], "unknown model 'b-vgg'"),
    "models-bad-depth": (["models", "b-resnet", "--depth", "7"], "6n+2"),
}

# user errors that are not caught yet: each must exit 2 with one line once fixed
FIXED = {  # once bugs: each must now be a one-line user error

    "negative-baseline-epochs": (["train", "--dry-run", "--dataset", "synthetic", "--baseline-epochs", "-1"],
                                 "was: --baseline-epochs -1 is accepted and silently skips the baseline phase"),
    "zero-max-steps": (["train", "--dry-run", "--dataset", "synthetic", "--max-steps", "0"],
                       "was: --max-steps 0 is accepted (trains nothing and writes a checkpoint)"),
    "negative-limit": (["train", "--dry-run", "--dataset", "synthetic", "--limit", "-5"],
                       "was: --limit -5 is accepted and drops the last 5 samples (x[:-5])"),
    "alexnet-on-digits": (["train", "--dry-run", "--dataset", "digits", "--model", "b-alexnet"],
                          "was: b-alexnet on 8x8 digits dies with a torch RuntimeError traceback"),
    "models-input-too-small": (["models", "b-alexnet", "--input-size", "12"],
                               "was: `models b-alexnet --input-size 12` dies with a RuntimeError traceback"),
}


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "edgebranchy", *argv], capture_output=True, text=True,
                          timeout=240, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    jobs = {**OK, **{k: v[0] for k, v in ERRORS.items() if k in SUBPROCESS_ERRORS}}
    jobs = {k: [a.format(tmp=tmp) for a in argv] for k, argv in jobs.items()}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {k: pool.submit(_run, argv) for k, argv in jobs.items()}
        out = {k: f.result() for k, f in futures.items()}
    out["_tmp"] = tmp
    return out


def _in_process(argv, tmp_path, capsys):
    from edgebranchy.cli import main

    rc = main([a.format(tmp=tmp_path) for a in argv])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, rc, out, err)


def _ok(r):
    assert r.returncode == 0, f"rc {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr


def test_help_lists_train_and_models(results):
    r = results["help"]
    _ok(r)
    assert re.search(r"^\s+train\s+\S", r.stdout, re.M) and re.search(r"^\s+models\s+\S", r.stdout, re.M), r.stdout


def test_models_b_lenet_prints_macs(results):
    r = results["models-lenet"]
    _ok(r)
    assert r.stdout.startswith("b-lenet:")
    assert "2 exits" in r.stdout and "baseline 1.140 M MACs" in r.stdout, r.stdout
    assert "220,150" in r.stdout and "1,140,070" in r.stdout  # MACs to exit 0 and to the main exit
    assert "b-alexnet" not in r.stdout


def test_models_options(tmp_path, capsys):
    r = _in_process(OK_IN_PROCESS["models-resnet20-gray"], tmp_path, capsys)
    _ok(r)
    assert "input 1x28x28" in r.stdout and "3 exits" in r.stdout


def test_dry_run_prints_the_summary(results):
    r = results["dry-run"]
    _ok(r)
    assert r.stdout.startswith("b-lenet {")
    assert "'in_channels': 1" in r.stdout and "'input_size': 28" in r.stdout and "'num_classes': 10" in r.stdout
    assert "baseline 1.140 M MACs" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if re.match(r"^\s+[01]\s", ln)]
    assert len(rows) == 2 and rows[0].rstrip().endswith("5x15x15") and rows[1].rstrip().endswith("720")
    assert not (results["_tmp"] / "never.pt").exists()


def test_dry_run_resnet_depth(tmp_path, capsys):
    r = _in_process(OK_IN_PROCESS["dry-run-resnet"], tmp_path, capsys)
    _ok(r)
    assert "'depth': 20" in r.stdout and "3 exits" in r.stdout


def _one_line_error(r, phrase: str):
    assert r.returncode == 2, f"rc {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.strip("\n").splitlines() if not ln.rstrip().endswith(" ...")]  # notes
    assert len(lines) == 1, r.stderr
    assert re.match(r"^edgebranchy (train|models): error: ", lines[0]), lines[0]
    assert phrase in lines[0], lines[0]


@pytest.mark.parametrize("name", sorted(SUBPROCESS_ERRORS))
def test_user_errors_exit_2_with_one_line(results, name):
    _one_line_error(results[name], ERRORS[name][1])
    assert not (results["_tmp"] / "x.pt").exists()


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_user_errors_in_process(name, tmp_path, capsys):
    _one_line_error(_in_process(ERRORS[name][0], tmp_path, capsys), ERRORS[name][1])
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("name", sorted(FIXED))
def test_uncaught_user_errors(name, tmp_path, capsys):
    _one_line_error(_in_process(FIXED[name][0], tmp_path, capsys), "")
