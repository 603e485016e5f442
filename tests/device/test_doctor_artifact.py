"""`edgebranchy doctor ARTIFACT`: the artifact's answers on a backend against ONNX Runtime fp32, for real on ONNX
Runtime (fp32 and fp16 graphs), on the torch backend, and against the strict TensorRT double; broken graphs and
backends exit 1 naming the samples; an fp16 flip next to the threshold is told apart from them."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from eb_doctor_helpers import chain, perturb_graph
from trt_double import assert_clean, install

from eb_testutil import NO_TORCH, run_cli, run_cli_with
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.exits.rule import assign_exits
from edgebranchy.device.agreement import RTOL

N = 64


def _copy(src, tmp_path, name="art"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _inputs(art_dir, n=N):
    """The doctor's inputs, independently: the first n samples of the synthetic set's test split, normalised."""
    from edgebranchy.data import load_dataset

    art = Artifact.load(art_dir)
    b = load_dataset("synthetic")
    return art.preprocess(b.test.x[:n]), b.test.y[:n], art.thresholds


def _errors(p) -> list:
    """stderr without the progress notes."""
    from edgebranchy.util.talk import is_note

    return [line for line in p.stderr.strip().splitlines() if not is_note(line)]


def _json(p) -> dict:
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


def test_onnxruntime_against_onnxruntime_agrees_exactly_without_torch(tiny_artifact, tmp_path):
    """A real subprocess with torch blocked: the table, exit 0, every difference exactly 0, and the exit counts and
    accuracy it prints equal what the graphs give when run here independently."""
    out = tmp_path / "doctor.json"
    p = run_cli_with(NO_TORCH, "doctor", tiny_artifact, "--samples", N, "--out", out)
    assert p.returncode == 0, p.stderr
    assert "PASS: onnxruntime/fp32" in p.stdout and p.stdout.count("identical") == 3  # two exits, the baseline
    assert "doctor: " in p.stderr and "Traceback" not in p.stderr  # progress notes
    rep = json.loads(out.read_text())
    assert rep["passed"] and rep["arithmetic"] == "fp32" and rep["rtol"] == RTOL["fp32"]
    assert rep["inputs"]["kind"] == "dataset" and rep["inputs"]["samples"] == N
    for row in rep["exits"]:
        assert row["max_abs_logit_diff"] == 0 and row["max_abs_entropy_diff"] == 0 and row["identical"]
    assert rep["baseline"]["max_abs_logit_diff"] == 0 and rep["samples"] == []
    assert rep["labels_equal"] == rep["exits_equal"] == N
    x, y, ts = _inputs(tiny_artifact)
    logits, ents = chain(tiny_artifact, x)
    exits = assign_exits(ents, ts)
    labels = np.array([logits[e][i].argmax() for i, e in enumerate(exits)])
    assert rep["exit_counts"]["candidate"] == np.bincount(exits, minlength=2).tolist()
    assert rep["accuracy"]["candidate"] == pytest.approx(float(np.mean(labels == y)))
    assert [r["logit_scale"] for r in rep["exits"]] == pytest.approx([float(np.abs(z).max()) for z in logits])
    assert len(rep["latency_ms"]["candidate"]) == 2 and all(r["host_ms"] > 0 for r in rep["latency_ms"]["reference"])


def _flip_threshold(art_dir):
    """A threshold for exit 0 between the fp32 and the fp16 entropy of the sample where they differ most."""
    x, _, _ = _inputs(art_dir)
    _, e32 = chain(art_dir, x, "fp32")
    _, e16 = chain(art_dir, x, "fp16")
    i = int(np.argmax(np.abs(e32[0] - e16[0])))
    assert e32[0][i] != e16[0][i]
    return i, float(np.float32((e32[0][i] + e16[0][i]) / 2)), e32[0], e16[0]


def test_an_fp16_flip_next_to_the_threshold_is_precision(tiny_artifact):
    """Real fp16 graphs on ONNX Runtime, with the threshold put between one sample's fp32 and fp16 entropies: that
    sample leaves at another exit, the doctor lists it with its distance to the threshold and passes."""
    i, t, e32, e16 = _flip_threshold(tiny_artifact)
    assert (e32[i] < t) != (e16[i] < t)  # the flip is real
    p = run_cli("doctor", tiny_artifact, "--precision", "fp16", "--samples", N, "--thresholds", repr(t), "--json")
    rep = _json(p)
    assert p.returncode == 0 and rep["passed"] and rep["arithmetic"] == "fp16"
    flipped = {s["index"]: s for s in rep["samples"]}
    assert i in flipped
    s = flipped[i]
    assert s["kind"] == "exit" and s["explained"] and s["at_exit"] == 0
    assert s["distance"] == pytest.approx(abs(e32[i] - t), rel=1e-6) and s["distance"] <= s["band"]
    assert rep["exits"][0]["max_abs_entropy_diff"] >= float(np.max(np.abs(e32 - e16))) - 1e-7
    assert 0 < rep["exits"][0]["max_abs_logit_diff"] <= rep["exits"][0]["logit_tolerance"]
    table = run_cli("doctor", tiny_artifact, "--precision", "fp16", "--samples", N, "--thresholds", repr(t))
    assert table.returncode == 0 and (f"{i:>7}  0 -> 1" in table.stdout or f"{i:>7}  1 -> 0" in table.stdout)
    assert "precision" in table.stdout and "BEYOND" not in table.stdout


def test_the_same_flip_is_beyond_fp32_tolerance(tiny_artifact):
    """The other side of the rule: the fp16 differences, held to fp32's tolerance (--rtol 1e-4), fail; the flip
    itself is then judged against a band no wider than that tolerance."""
    i, t, _, _ = _flip_threshold(tiny_artifact)
    p = run_cli("doctor", tiny_artifact, "--precision", "fp16", "--samples", N, "--thresholds", repr(t),
                "--rtol", repr(RTOL["fp32"]), "--json")
    rep = _json(p)
    assert p.returncode == 1 and not rep["passed"] and rep["rtol_source"] == "--rtol"
    assert not rep["exits"][0]["within"] and rep["exits"][0]["entropy_band"] <= RTOL["fp32"] * np.log(10)
    assert i in {s["index"] for s in rep["samples"]}


def test_a_perturbed_fp16_graph_fails_and_names_the_samples(tiny_artifact, tmp_path):
    art = _copy(tiny_artifact, tmp_path)
    perturb_graph(art, "segments/seg0.fp16.onnx", scale=0.3)
    p = run_cli("doctor", art, "--precision", "fp16", "--samples", N)
    assert p.returncode == 1, p.stderr
    assert "EXCEEDS" in p.stdout and "FAIL: onnxruntime/fp16" in p.stdout and "BEYOND precision" in p.stdout
    rep = _json(run_cli("doctor", art, "--precision", "fp16", "--samples", N, "--json"))
    bad = [s for s in rep["samples"] if not s["explained"]]
    assert bad and rep["unexplained"] == len(bad)
    x, _, ts = _inputs(art)
    _, e32 = chain(art, x, "fp32")
    _, e16 = chain(art, x, "fp16")
    really = np.flatnonzero(assign_exits(e32, ts) != assign_exits(e16, ts))
    assert {s["index"] for s in rep["samples"] if s["kind"] == "exit"} == set(really.tolist())
    for s in bad:
        assert f"{s['index']:>7}  " in p.stdout  # named in the table
        if s["kind"] == "exit":
            assert s["distance"] > rep["exits"][s["at_exit"]]["entropy_tolerance"]


def test_a_backend_that_flips_logits_fails_with_the_samples_named(tiny_artifact, monkeypatch, capsys):
    from edgebranchy.cli import main
    from edgebranchy.runtime.backends import base

    monkeypatch.setitem(base._REGISTRY, "flipping", "eb_doctor_helpers:FlippingBackend")
    assert main(["doctor", str(tiny_artifact), "--backend", "flipping", "--samples", str(N), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    last = [s for s in rep["samples"] if s["exit_reference"] == 1]
    assert rep["exits_equal"] == N and len(last) == rep["exit_counts"]["reference"][1] > 0
    assert all(s["kind"] == "label" and not s["explained"] and s["label_candidate"] == 9 - s["label_reference"]
               for s in last)
    assert rep["exits"][0]["identical"] and not rep["exits"][1]["within"]


def test_the_torch_backend_on_the_checkpoint_the_artifact_came_from(tiny_artifact):
    rep = _json(run_cli("doctor", tiny_artifact, "--backend", "torch", "--samples", N, "--json"))
    assert rep["passed"] and rep["backend"] == "torch" and rep["candidate"]["backend"] == "torch"
    assert rep["labels_equal"] == rep["exits_equal"] == N
    assert all(r["max_abs_logit_diff"] <= r["logit_tolerance"] for r in rep["exits"])


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
def test_tensorrt_double_builds_the_engines_and_agrees(version, tiny_artifact, tmp_path, monkeypatch, capsys):
    """On the strict double: engines built on the first run and reused on the second, fp16 differences within
    fp16's tolerance, and the engine's own time per segment from CUDA events."""
    from edgebranchy.cli import main

    d = install(monkeypatch, version)
    art = _copy(tiny_artifact, tmp_path)
    args = ["doctor", str(art), "--backend", "tensorrt", "--profile", "x86-cpu", "--precision", "fp16",
            "--samples", "32", "--batch-size", "4", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["arithmetic"] == "fp16" and rep["candidate"]["backend"] == "tensorrt"
    assert all(0 < r["max_abs_logit_diff"] <= r["logit_tolerance"] for r in rep["exits"])
    assert all(r["gpu_ms"] is not None and r["gpu_ms"] >= 0 for r in rep["latency_ms"]["candidate"])
    builds = len(d.builds)
    assert builds == 6  # two segments, the baseline, the gathers of segment 0's features and of logits, the If engine
    assert main(args) == 0 and len(d.builds) == builds  # the second run reuses them
    capsys.readouterr()
    assert main(args[:-1] + ["--batch-size", "128"]) == 2
    assert "above the engines' max batch" in capsys.readouterr().err
    assert_clean(d)


def test_no_data_set_falls_back_to_synthetic_inputs_and_says_so(tiny_artifact, tmp_path):
    art = _copy(tiny_artifact, tmp_path)
    m = json.loads((art / "manifest.json").read_text())
    m["source"]["dataset"] = {"name": "imagefolder", "source": str(tmp_path / "gone"), "split_seed": 0}
    (art / "manifest.json").write_text(json.dumps(m))
    p = run_cli("doctor", art, "--samples", "16")
    assert p.returncode == 0 and "note: no data set" in p.stdout and "synthetic inputs" in p.stdout
    rep = _json(run_cli("doctor", art, "--samples", "16", "--json"))
    assert rep["inputs"]["kind"] == "synthetic" and rep["inputs"]["samples"] == 16 and rep["accuracy"] is None
    assert rep["passed"] and rep["n"] == 16
    asked = run_cli("doctor", art, "--dataset", "mnist", "--data-dir", tmp_path / "gone")
    assert asked.returncode == 2 and len(_errors(asked)) == 1  # asked for: no fallback


def test_wrong_input_is_one_line_and_exit_2(tiny_checkpoint, tmp_path):
    for args, said in (([tiny_checkpoint], "is a checkpoint, not an artifact: export it first"),
                       ([tmp_path / "missing"], "artifact directory not found"),
                       ([tmp_path, "--samples", "0"], "--samples"),
                       (["--samples", "5"], "--samples: only with an ARTIFACT"),
                       ([tmp_path, "--profile", "x86-cpu"], "goes with --backend tensorrt")):
        p = run_cli("doctor", *args)
        assert p.returncode == 2 and said in p.stderr, (args, p.stderr)
        assert len(_errors(p)) == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("setting, value, phrase", [
    ("samples", 10 ** 12, "at most 10000000"), ("repeats", 10 ** 9, "at most 1000000"),
    ("batch_size", 1 << 20, "at most 65536"), ("samples", True, "whole number"), ("repeats", 0, ">= 1"),
    ("batch_size", 2.5, "whole number"),
])
def test_the_library_bounds_samples_repeats_and_batch(tiny_artifact, setting, value, phrase):
    """Through the library, not only the CLI's argument types: a number past its bound is refused, named as the
    setting, before any sample is read or memory sized by it."""
    from edgebranchy.device.doctor_artifact import check_artifact
    from edgebranchy.errors import EdgeBranchyError

    with pytest.raises(EdgeBranchyError, match=f"`{setting}`.*{phrase}"):
        check_artifact(tiny_artifact, **{setting: value})
