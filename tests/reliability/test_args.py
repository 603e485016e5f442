"""The shared argument types: every out-of-range value is one argparse line naming the option and the range."""
from __future__ import annotations

import argparse

import pytest

from edgebranchy.cli import _args

from rel_util import cli, one_error_line

CASES = [
    (_args.positive_int, ["1", "7"], ["0", "-1", "1.5", "x", ""]),
    (_args.nonneg_int, ["0", "3"], ["-1", "nan"]),
    (_args.seed, ["0", str(2**32 - 1)], ["-1", str(2**32)]),
    (_args.positive_float, ["1e-3", "2"], ["0", "-1", "inf", "nan", "x"]),
    (_args.nonneg_float, ["0", "2.5"], ["-0.1", "inf", "nan"]),
    (_args.finite_float, ["-3", "0"], ["inf", "-inf", "nan"]),
    (_args.fraction, ["1", "0.4"], ["0", "1.1", "nan", "-0.2"]),
    (_args.probability, ["0", "1"], ["-0.1", "1.01", "nan"]),
    (_args.thresholds, ["0", "0.5,0"], ["-1", "nan", "inf", "a", "0.1,,"]),
    (_args.exit_weights, ["1,0.3", "0,1"], ["-1,-1", "nan,nan", "0,0", "inf,1"]),
    (_args.betas, ["0.9,0.999", "0,0"], ["2,2", "0.9", "0.9,1", "nan,0.9"]),
    (_args.device, ["cpu", "cuda", "cuda:1"], ["bogus", "gpu", "cuda:x", ""]),
]


@pytest.mark.parametrize("typ, good, bad", CASES, ids=[c[0].__name__ + str(i) for i, c in enumerate(CASES)])
def test_types(typ, good, bad):
    for g in good:
        typ(g)
    for b in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            typ(b)


@pytest.mark.parametrize("argv, option, words", [
    (["train", "--lr", "inf"], "--lr", "> 0"),
    (["train", "--lr", "nan"], "--lr", "> 0"),
    (["train", "--betas", "2,2"], "--betas", "[0, 1)"),
    (["train", "--exit-weights=nan,nan"], "--exit-weights", ">= 0"),
    (["train", "--exit-weights=-1,-1"], "--exit-weights", ">= 0"),
    (["train", "--seed", "-1"], "--seed", "from 0"),
    (["train", "--epochs", "0"], "--epochs", ">= 1"),
    (["train", "--device", "bogus"], "--device", "cpu, cuda"),
    (["bench", "ART", "--idle", "nan"], "--idle", ">= 0"),
    (["bench", "ART", "--min-window", "inf"], "--min-window", ">= 0"),
    (["bench", "ART", "--trials", "0"], "--trials", ">= 1"),
    (["quickstart", "--trials", "0"], "--trials", ">= 1"),
    (["quickstart", "--samples", "-1"], "--samples", ">= 1"),
    (["quickstart", "--epochs", "0"], "--epochs", ">= 1"),
    (["calibrate", "X.pt", "--thresholds=-1"], "--thresholds", ">= 0"),
    (["calibrate", "X.pt", "--frontier-rows", "-1"], "--frontier-rows", ">= 1"),
    (["calibrate", "X.pt", "--budget", "0"], "--budget", "(0, 1]"),
    (["export", "X.pt", "--out", "A", "--check-samples", "-5"], "--check-samples", ">= 0"),
    (["predict", "ART", "--thresholds=-1"], "--thresholds", ">= 0"),
    (["predict", "ART", "--batch-size", "0"], "--batch-size", ">= 1"),
])
def test_cli_refuses_before_work(argv, option, words):
    rc, out, err = cli(*argv)
    assert rc == 2
    line = one_error_line(err)
    assert option in line and words in line, line
    assert out == ""


@pytest.mark.parametrize("option, value", [("--connect-timeout", "0"), ("--jobs", "-2"), ("--step-timeout", "nan"),
                                           ("--step-timeout", "inf")])
def test_remote_numeric_options(option, value):
    rc, out, err = cli("remote", "ART", "host", "--dry-run", f"{option}={value}")
    assert rc == 2 and option in one_error_line(err) and out == ""
