"""Property: wrong types and values in CLI options and in the manifest, checkpoint config, profile and
results loaders give exit status 2, one line on stderr, no traceback, and change no file.

In-process calls of `edgebranchy.cli.main` (cheap); example counts are small for a 2-core CI.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rel_util import cli, one_error_line, tree

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def world(tiny_calibrated, tiny_artifact, tmp_path_factory):
    """A folder with a checkpoint, an artifact and a results file: what a careless user points at."""
    root = tmp_path_factory.mktemp("world")
    shutil.copy(tiny_calibrated, root / "m.pt")
    shutil.copytree(tiny_artifact, root / "art")
    (root / "notes.txt").write_text("mine")
    results = tmp_path_factory.mktemp("res") / "r.json"
    rc, _, err = cli("bench", root / "art", "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                     "--samples", "6", "--trials", "1", "--warmup", "1", "--min-window", "0", "--idle", "0",
                     "--out", results)
    assert rc == 0, err
    shutil.copy(results, root / "r.json")
    return root


def _check_refused(world, argv, before=None):
    before = tree(world) if before is None else before
    rc, _, err = cli(*argv)
    assert rc == 2, (argv, err)
    one_error_line(err)
    assert tree(world) == before, argv


# ------------------------------------------------------------------ CLI options

NOT_INT = st.sampled_from(["x", "1.5", "nan", "inf", "", "1e3", "0x10", "--"])
NOT_NUM = st.sampled_from(["x", "", "one", "1,2", "--"])
NON_POSITIVE_INT = st.integers(max_value=0).map(str)
NEGATIVE_INT = st.integers(max_value=-1).map(str)
NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity"])
NEGATIVE = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr)


def _opt(cmd, option, values):
    return st.tuples(st.just(cmd), st.just(option), values)


OPTIONS = st.one_of(
    _opt("train", "--epochs", NON_POSITIVE_INT | NOT_INT),
    _opt("train", "--batch-size", NON_POSITIVE_INT | NOT_INT),
    _opt("train", "--baseline-epochs", NEGATIVE_INT | NOT_INT),
    _opt("train", "--lr", NON_FINITE | NEGATIVE | st.just("0") | NOT_NUM),
    _opt("train", "--betas", st.sampled_from(["2,2", "0.9", "1,0.5", "nan,0.9", "-0.1,0.9", "0.9,0.9,0.9"])),
    _opt("train", "--exit-weights", st.sampled_from(["nan,nan", "-1,-1", "0,0", "inf,1", "a,b"])),
    _opt("train", "--seed", NEGATIVE_INT | st.just(str(2**32)) | NOT_INT),
    _opt("train", "--device", st.sampled_from(["bogus", "gpu", "cuda:x", "", "CPU"])),
    _opt("train", "--limit", NON_POSITIVE_INT),
    _opt("bench", "--idle", NON_FINITE | NEGATIVE),
    _opt("bench", "--min-window", NON_FINITE | NEGATIVE),
    _opt("bench", "--trials", NON_POSITIVE_INT | NOT_INT),
    _opt("bench", "--samples", NON_POSITIVE_INT),
    _opt("bench", "--warmup", NEGATIVE_INT),
    _opt("bench", "--threads", NON_POSITIVE_INT),
    _opt("calibrate", "--thresholds", NEGATIVE | NON_FINITE | NOT_NUM),
    _opt("calibrate", "--budget", st.sampled_from(["0", "-0.5", "1.5", "nan", "inf"])),
    _opt("calibrate", "--max-accuracy-drop", st.sampled_from(["-1", "nan", "101", "inf"])),
    _opt("calibrate", "--frontier-rows", NON_POSITIVE_INT),
    _opt("export", "--check-samples", NEGATIVE_INT | NOT_INT),
    _opt("predict", "--thresholds", NEGATIVE | NON_FINITE),
    _opt("predict", "--batch-size", NON_POSITIVE_INT),
    _opt("quickstart", "--trials", NON_POSITIVE_INT),
    _opt("quickstart", "--samples", NON_POSITIVE_INT),
    _opt("quickstart", "--epochs", NON_POSITIVE_INT),
    _opt("models", "--num-classes", NON_POSITIVE_INT),
)

BASE = {
    "train": lambda w: ["train", "--dataset", "synthetic", "--samples", "100", "--max-steps", "1", "--quiet",
                        "--out", w / "new.pt"],
    "bench": lambda w: ["bench", w / "art", "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                        "--out", w / "new.json"],
    "calibrate": lambda w: ["calibrate", w / "m.pt", "--in-place"],
    "export": lambda w: ["export", w / "m.pt", "--out", w / "new-art"],
    "predict": lambda w: ["predict", w / "art", "--dataset", "synthetic"],
    "quickstart": lambda w: ["quickstart", "--dataset", "synthetic", "--out", w / "q"],
    "models": lambda w: ["models", "b-lenet"],
}


@SETTINGS
@given(OPTIONS)
def test_bad_option_values(world, case):
    cmd, option, value = case
    _check_refused(world, [*BASE[cmd](world), f"{option}={value}"])


OUTPUTS = st.sampled_from([
    ["export", "{w}/m.pt", "--out", "{w}/m.pt", "--force"],
    ["export", "{w}/m.pt", "--out", "{w}", "--force"],
    ["export", "{w}/m.pt", "--out", "{w}/art"],  # an earlier artifact: only with --force
    ["export", "{w}/m.pt", "--out", "{w}/notes.txt", "--force"],
    ["bench", "{w}/art", "--out", "{w}/art/manifest.json", "--force"],
    ["bench", "{w}/art", "--out", "{w}/art", "--force"],
    ["bench", "{w}/art", "--out", "{w}/m.pt", "--force"],
    ["bench", "{w}/art", "--out", "{w}/notes.txt", "--force"],
    ["bench", "{w}/art", "--out", "{w}/r.json"],
    ["train", "--dataset", "synthetic", "--out", "{w}/art"],
    ["train", "--dataset", "synthetic", "--out", "{w}/notes.txt"],
    ["train", "--dataset", "synthetic", "--out", "{w}/r.json"],
    ["report", "{w}/r.json", "--out", "{w}/r.json"],
    ["report", "{w}/r.json", "--out", "{w}/notes.txt"],
    ["report", "{w}/r.json", "--out", "/proc/eb-report"],
    ["train", "--dataset", "synthetic", "--out", "/proc/eb/m.pt"],
    ["quickstart", "--dataset", "synthetic", "--out", "{w}/notes.txt"],
    ["quickstart", "--dataset", "synthetic", "--out", "{w}/art"],
])


@settings(SETTINGS, max_examples=18)
@given(OUTPUTS)
def test_outputs_that_would_destroy_something(world, argv):
    _check_refused(world, [a.format(w=world) for a in argv])


# ------------------------------------------------------------------ loaders

WRONG_TYPE = st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
NOT_POSITIVE = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(-1))
NOT_A_THRESHOLD = st.one_of(st.text(max_size=4), st.booleans(), st.lists(st.floats(), max_size=1),
                            st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))

MANIFEST_FIELDS = st.one_of(
    st.tuples(st.just(("input", "scale")), WRONG_TYPE | NOT_POSITIVE),
    st.tuples(st.just(("input", "std")), WRONG_TYPE | NOT_POSITIVE.map(lambda v: [v])),
    st.tuples(st.just(("input", "mean")), WRONG_TYPE.filter(lambda v: v != [0] and not (isinstance(v, list)
                                                                                        and len(v) == 1))),
    st.tuples(st.just(("input", "shape")), WRONG_TYPE | st.just([1, 0, 28]) | st.just([1, 28])),
    st.tuples(st.just(("input",)), WRONG_TYPE),
    st.tuples(st.just(("classes",)), st.one_of(st.just([]), st.text(max_size=3), st.lists(st.integers(), min_size=1,
                                                                                         max_size=3))),
    st.tuples(st.just(("exits", 0, "threshold")), NOT_A_THRESHOLD),
    st.tuples(st.just(("exits",)), st.one_of(st.text(max_size=3), st.integers(), st.just([]))),
    st.tuples(st.just(("segments",)), st.one_of(st.text(max_size=3), st.integers(), st.just([]))),
    st.tuples(st.just(("entropy",)), st.one_of(st.text(max_size=3), st.integers(), st.lists(st.integers()))),
    st.tuples(st.just(("entropy", "temperatures")), st.one_of(st.text(max_size=3), st.just([0.0, 1.0]),
                                                               st.just([-1.0, 1.0]))),
    st.tuples(st.just(("schema_version",)), st.one_of(st.booleans(), st.text(max_size=2), st.just(2))),
    st.tuples(st.just(("files",)), st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2))),
    st.tuples(st.just(("baseline",)), st.one_of(st.text(max_size=3), st.integers(), st.just({}))),
)


def _put(doc, path, value):
    obj = doc
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


@SETTINGS
@given(MANIFEST_FIELDS)
def test_manifest_fields(world, tmp_path_factory, case):
    path, value = case
    art = tmp_path_factory.mktemp("a") / "art"
    shutil.copytree(world / "art", art)
    m = json.loads((art / "manifest.json").read_text())
    _put(m, path, value)
    (art / "manifest.json").write_text(json.dumps(m))
    before = tree(art)
    rc, _, err = cli("predict", art, "--dataset", "synthetic", "--samples", "4")
    assert rc == 2, (path, value, err)
    one_error_line(err, "predict")
    assert tree(art) == before


CONFIG_FIELDS = st.one_of(
    st.tuples(st.just(("input", "scale")), WRONG_TYPE | NOT_POSITIVE),
    st.tuples(st.just(("input", "std")), WRONG_TYPE | NOT_POSITIVE.map(lambda v: [v])),
    st.tuples(st.just(("input", "shape")), WRONG_TYPE | st.just([0, 28, 28])),
    st.tuples(st.just(("input",)), WRONG_TYPE),
    st.tuples(st.just(("classes",)), st.one_of(st.just([]), st.text(max_size=3), st.none())),
    st.tuples(st.just(("calibration", "thresholds")), st.lists(NOT_A_THRESHOLD, min_size=1, max_size=1)
              | WRONG_TYPE.filter(lambda v: v != [] and not (isinstance(v, list) and len(v) == 1
                                                             and isinstance(v[0], int) and v[0] >= 0))),
    st.tuples(st.just(("calibration",)), st.one_of(st.text(max_size=3), st.integers(), st.lists(st.integers()))),
    st.tuples(st.just(("model",)), st.one_of(st.text(max_size=3), st.integers(), st.none())),
)


@SETTINGS
@given(CONFIG_FIELDS)
def test_checkpoint_config_fields(world, tmp_path_factory, case):
    import torch

    from edgebranchy.models.checkpoint import load_checkpoint

    path, value = case
    ck = load_checkpoint(world / "m.pt")
    cfg = ck.config
    _put(cfg, path, value)
    d = tmp_path_factory.mktemp("c")
    p = d / "bad.pt"
    torch.save({"format": "edgebranchy.checkpoint", "version": 1, "config": json.dumps(cfg),
                "branchy": ck.branchy_state, "baseline": ck.baseline_state}, p)
    before = tree(d)
    for argv in (["calibrate", p, "--in-place", "--thresholds", "0.1"], ["export", p, "--out", d / "a"]):
        rc, _, err = cli(*argv)
        assert rc == 2, (path, value, err)
        one_error_line(err)
        assert tree(d) == before


PROFILE_KEYS = st.one_of(
    st.tuples(st.just(("power", "interval_ms")), st.one_of(st.integers(max_value=9), st.text(max_size=3),
                                                           st.booleans(), st.floats(allow_nan=True))),
    st.tuples(st.just(("power.estimate", "p_idle_w")), st.one_of(st.floats(max_value=-1e-9), st.text(max_size=3),
                                                                 st.booleans(), st.just(float("nan")),
                                                                 st.just(float("inf")))),
    st.tuples(st.just(("runtime", "intra_op_threads")), st.one_of(st.integers(max_value=-1), st.text(max_size=3),
                                                                  st.floats(allow_nan=True))),
    st.tuples(st.just(("tensorrt", "max_batch")), st.one_of(st.integers(max_value=0), st.booleans())),
    st.tuples(st.just(("runtime", "backend")), st.one_of(st.text(max_size=4).filter(
        lambda s: s not in ("torch",)), st.integers())),
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v)))
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


@SETTINGS
@given(PROFILE_KEYS)
def test_profile_fields(tmp_path_factory, case):
    import re

    from eb_testutil import ROOT

    (_, key), value = case
    text = (ROOT / "profiles" / "x86-cpu.toml").read_text()
    text, n = re.subn(rf"(?m)^{key} = .*$", lambda _: f"{key} = {_toml_value(value)}", text)
    assert n == 1
    d = tmp_path_factory.mktemp("p")
    (d / "bad.toml").write_text(text)
    before = tree(d)
    for argv in (["profiles", d / "bad.toml"],
                 ["bench", "no-such-artifact", "--profile", d / "bad.toml", "--out", d / "r.json"]):
        rc, _, err = cli(*argv)
        assert rc == 2, (key, value, err)
        one_error_line(err)
        assert tree(d) == before


RESULTS_FIELDS = st.one_of(  # a bench file: schema version 2, each run under runs[i]
    st.tuples(st.just(("version",)), st.one_of(st.booleans(), st.text(max_size=2), st.just(7))),
    st.tuples(st.just(("runs", 0, "variants", "branchy", "accuracy")),
              st.one_of(WRONG_TYPE, st.just(1.5), st.just(-0.1))),
    st.tuples(st.just(("runs", 0, "variants", "baseline", "latency_ms", "p50")), WRONG_TYPE),
    st.tuples(st.just(("runs", 0, "environment")),
              st.one_of(st.text(max_size=3), st.integers(), st.lists(st.integers()))),
    st.tuples(st.just(("runs", 0, "variants")), st.one_of(st.text(max_size=3), st.integers(), st.just({}))),
    st.tuples(st.just(("runs", 0, "idle", "watts")),
              st.one_of(st.text(max_size=3), st.booleans(), st.lists(st.integers()))),
    st.tuples(st.just(("runs",)), st.one_of(st.just([]), st.text(max_size=3), st.integers())),
)


@SETTINGS
@given(RESULTS_FIELDS)
def test_results_fields(world, tmp_path_factory, case):
    path, value = case
    doc = json.loads((world / "r.json").read_text())
    _put(doc, path, value)
    d = tmp_path_factory.mktemp("r")
    (d / "r.json").write_text(json.dumps(doc))
    before = tree(d)
    rc, _, err = cli("report", d / "r.json", "--out", d / "rep")
    assert rc == 2, (path, value, err)
    one_error_line(err, "report")
    assert tree(d) == before


def test_a_few_as_real_subprocesses(world):
    """The same guarantees from a real interpreter (argparse, the top-level handler, exit status)."""
    from eb_testutil import run_cli

    before = tree(world)
    for argv in (["train", "--lr", "nan", "--out", world / "x.pt"],
                 ["export", world / "m.pt", "--out", world, "--force"],
                 ["bench", world / "art", "--out", world / "art" / "manifest.json"]):
        r = run_cli(*argv)
        assert r.returncode == 2, r.stderr
        one_error_line(r.stderr)
    assert tree(world) == before
