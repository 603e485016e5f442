"""Bench end to end on the tiny artifact, including a bench killed mid-run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.bench.config import BenchConfig
from edgebranchy.bench.session import run_bench

from eb_testutil import run_cli, run_cli_with, sigkill_after_trial


def _cfg(artifact, out, **kw):
    base = dict(artifact=str(artifact), out=str(out), backend="onnxruntime", profile="x86-cpu", power="estimate",
                dataset="synthetic", batch_size=1, samples=40, trials=2, warmup=2, min_window_s=0.12, idle_s=0.12,
                segment_repeats=5)
    base.update(kw)
    return BenchConfig(**base)


def test_bench_end_to_end(tiny_artifact, tmp_path, synthetic_test):
    out = tmp_path / "r.json"
    res = run_bench(_cfg(tiny_artifact, out), log=lambda s: None, progress=False)
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert res["schema"] == "edgebranchy.results" and res["version"] == 3 and len(res["runs"]) == 1
    doc = res
    res = doc["runs"][0]
    assert res["id"] == "r1" and "onnxruntime/fp32 · batch 1" in res["label"]
    b, e = res["variants"]["baseline"], res["variants"]["branchy"]
    # accuracy and exits agree with the runner on the same samples
    from edgebranchy.runtime.runner import EarlyExitRunner

    _, x, y = synthetic_test
    with EarlyExitRunner(tiny_artifact) as r:
        p = r.predict(x[:40])
        assert e["accuracy"] == pytest.approx(np.mean(p.labels == y[:40]))
        assert e["exit_counts"] == np.bincount(p.exits, minlength=2).tolist()
        assert b["accuracy"] == pytest.approx(np.mean(r.baseline(x[:40]) == y[:40]))
    assert sum(e["exit_fractions"]) == pytest.approx(1.0)
    from edgebranchy.artifact.latencies import load_latencies
    from edgebranchy.artifact.results import load_runs_doc

    assert load_runs_doc(out) == doc["runs"]
    raw = load_latencies(out, "r1")  # the raw latencies live in the side file, the statistics stay inline
    assert doc["latencies"] == "r.json.latencies.npz" and (tmp_path / "r.json.latencies.npz").is_file()
    for name, v in (("baseline", b), ("branchy", e)):
        lat = v["latency_ms"]
        assert "samples" not in lat and lat["count"] == raw[name].size >= 2 * 40
        assert lat["p50"] == pytest.approx(float(np.percentile(raw[name], 50)))
        assert lat["per"] == "sample"
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"]
        assert v["energy"]["kind"] == "estimated" and v["energy"]["source"] == "estimate"
        assert len(v["energy"]["trials"]) == 2
        assert v["energy"]["per_inference_mj"]["median"] > 0
    assert len(e["segment_latency_ms"]) == 2 and all(t > 0 for t in e["segment_latency_ms"])
    # the trials are the replicates: each one's calls and statistics are recorded, and the intervals rest on them
    lines = [json.loads(line) for line in (tmp_path / "r.json.jsonl").read_text().splitlines()]
    for name, v in (("baseline", b), ("branchy", e)):
        recs = [l for l in lines if l["type"] == "trial" and l["variant"] == name]
        table = v["latency_ms"]["trials"]
        assert table["calls"] == [len(r["latency_ms"]) for r in recs] and sum(table["calls"]) == raw[name].size
        assert table["p50"] == pytest.approx([float(np.percentile(r["latency_ms"], 50)) for r in recs])
        assert table["mean"] == pytest.approx([float(np.mean(r["latency_ms"])) for r in recs])
        est = v["energy"]["per_inference_mj"]
        assert est["trials"] == [0, 1] and est["values"] == pytest.approx(
            [r["energy"]["joules"] / r["inferences"] * 1e3 for r in recs])
    g = res["gains"]
    d = np.log(np.asarray(b["latency_ms"]["trials"]["p50"]) / np.asarray(e["latency_ms"]["trials"]["p50"]))
    half = 12.706 * np.std(d, ddof=1) / np.sqrt(2)   # two trials: t with one degree of freedom
    assert g["trials"] == 2 and g["p50"]["trials"] == 2 and g["p50"]["note"] == "only 2 trials: the interval is wide"
    assert g["p50"]["ci95"] == pytest.approx([g["p50"]["gain"] * np.exp(-half), g["p50"]["gain"] * np.exp(half)])
    assert res["accuracy_context"]["classes"] == 10 and len(res["accuracy_context"]["exit_accuracy"]) == 2
    env = res["environment"]
    assert env["backend"] == "onnxruntime" and env["profile"] == "x86-cpu"
    assert env["thresholds"] == pytest.approx(res["calibration"]["thresholds"])
    assert env["backend_options"]["options"]["intra_op_threads"] == 1
    forms = env["batch1_forms"]  # the artifact has a single graph: both batch-1 forms measured, the faster ran
    assert forms["choice"] == env["batch1_form"] in ("segments", "single-graph")
    assert (forms["single_graph_us"] < forms["segments_us"]) == (forms["choice"] == "single-graph")
    lines = [json.loads(line) for line in (tmp_path / "r.json.jsonl").read_text().splitlines()]
    assert [l["type"] for l in lines] == ["start", "run-start", "idle"] + ["trial"] * 4 + ["run", "done"]
    assert [l["variant"] for l in lines if l["type"] == "trial"] == ["baseline", "branchy"] * 2


def test_on_trial_sees_every_trial_after_it_is_streamed(tiny_artifact, tmp_path):
    out = tmp_path / "t.json"
    seen = []

    def on_trial(rec):
        streamed = [json.loads(line) for line in (tmp_path / "t.json.jsonl").read_text().splitlines()]
        seen.append((rec["trial"], rec["variant"], streamed[-1] == json.loads(json.dumps(rec))))

    run_bench(_cfg(tiny_artifact, out, trials=2), log=lambda s: None, progress=False, on_trial=on_trial)
    assert seen == [(0, "baseline", True), (0, "branchy", True), (1, "baseline", True), (1, "branchy", True)]



def test_a_library_bench_prints_nothing_its_notes_go_to_logging(tiny_artifact, tmp_path, capsys, caplog):
    """Without `log`, the session's diagnostics are records of the edgebranchy.bench logger, not stdout."""
    caplog.set_level("INFO", logger="edgebranchy.bench")
    run_bench(_cfg(tiny_artifact, tmp_path / "l.json", trials=1), progress=False)
    assert capsys.readouterr().out == ""
    notes = [r.getMessage() for r in caplog.records if r.name == "edgebranchy.bench" and r.levelname == "INFO"]
    assert any(n.startswith("profile: x86-cpu") for n in notes) and any("idle power" in n for n in notes)


def test_the_on_trial_hook_may_be_set_on_the_session(tiny_artifact, tmp_path):
    from edgebranchy.bench.session import BenchSession

    session = BenchSession(_cfg(tiny_artifact, tmp_path / "h.json", trials=1), log=lambda s: None, progress=False)
    seen = []
    session.on_trial = lambda rec: seen.append((rec["run"], rec["trial"], rec["variant"]))
    session.run()
    assert seen == [("r1", 0, "baseline"), ("r1", 0, "branchy")]

def test_killed_bench_keeps_finished_trials(tiny_artifact, tmp_path):
    out = tmp_path / "k.json"
    r = run_cli_with(sigkill_after_trial(1, "baseline"), "bench", tiny_artifact, "--profile", "x86-cpu", "--power",
                     "estimate", "--dataset", "synthetic", "--samples", "20", "--trials", "3", "--warmup", "1",
                     "--min-window", "0", "--idle", "0", "--backend", "onnxruntime", "--out", out)
    assert r.returncode == -9, r.stderr
    assert not out.exists()
    lines = [json.loads(line) for line in (tmp_path / "k.json.jsonl").read_text().splitlines()]
    trials = [l for l in lines if l["type"] == "trial"]
    assert [(l["trial"], l["variant"]) for l in trials] == [(0, "baseline"), (0, "branchy"), (1, "baseline")]
    assert all(l["energy"]["joules"] >= 0 and len(l["latency_ms"]) == 20 for l in trials)


def test_bench_cli_and_bad_arguments(tiny_artifact, tmp_path):
    out = tmp_path / "c.json"
    r = run_cli("bench", tiny_artifact, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic",
                "--samples", "10", "--trials", "1", "--warmup", "1", "--min-window", "0", "--idle", "0",
                "--batch-size", "4", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "power: estimated (CPU-time model; --power estimate)" in r.stderr and "power:" not in r.stdout
    assert "latency gain" in r.stdout and r.stdout.rstrip().endswith(f"results: {out}")
    assert r.stdout.startswith("branchy is ")  # the verdict first
    res = json.loads(out.read_text())["runs"][0]
    pairs, v = res["accuracy_pairs"], res["variants"]  # the same samples: discordant counts explain the difference
    assert pairs["n"] == 10 and res["gains"]["accuracy"]["method"] == "paired"
    assert (pairs["branchy_only"] - pairs["baseline_only"]) / 10 == pytest.approx(
        v["branchy"]["accuracy"] - v["baseline"]["accuracy"])
    # measured set against calibration's estimate (the tiny artifact is calibrated on MACs)
    exp = res["gains"]["expected"]
    assert exp["source"] == "MACs"
    assert (f"calibration expected {exp['at_run_exits']['speedup']:.2f}x from MACs at these exit rates "
            f"({exp['speedup']:.2f}x at the calibrated ones); measured {res['gains']['mean']['gain']:.2f}x") in r.stdout
    assert res["config"]["batch_size"] == 4 and res["variants"]["branchy"]["latency_ms"]["per"] == "batch"
    assert res["environment"]["batch1_form"] == "segments" and res["environment"]["batch1_forms"] is None
    fresh = tmp_path / "d.json"  # `out` holds a finished run now: a rerun there is refused (tests/reliability)
    r = run_cli("bench", tiny_artifact, "--profile", "no-such-board", "--dataset", "synthetic", "--out", fresh)
    assert r.returncode == 2 and "no-such-board" in r.stderr and "Traceback" not in r.stderr
    # --dataset synthetic: the default (Fashion-MNIST) is not installed on every machine, and the
    # error under test is the power source's, not the data set's
    r = run_cli("bench", tiny_artifact, "--profile", "x86-cpu", "--power", "tegrastats", "--dataset", "synthetic",
                "--out", fresh)
    assert r.returncode == 2 and "tegrastats" in r.stderr
    assert not fresh.exists() and not (tmp_path / "d.json.jsonl").exists()
    with pytest.raises(EdgeBranchyError, match="trials"):
        run_bench(_cfg(tiny_artifact, fresh, trials=0), log=lambda s: None, progress=False)


def test_calibrate_with_costs_measured_by_bench(tiny_artifact, tiny_calibrated, tmp_path):
    """`calibrate --cost RESULTS.json` uses the per-segment latencies bench measured."""
    import shutil

    from edgebranchy.calibration import calibrate_checkpoint

    out = tmp_path / "r.json"
    res = run_bench(_cfg(tiny_artifact, out), log=lambda s: None, progress=False)["runs"][0]
    ck = tmp_path / "c.pt"
    shutil.copy(tiny_calibrated, ck)
    rec = calibrate_checkpoint(ck, max_accuracy_drop=100.0, cost=str(out), log=lambda s: None)  # always feasible
    assert rec["segment_costs"] == pytest.approx(res["variants"]["branchy"]["segment_latency_ms"])
    assert rec["baseline_cost"] == pytest.approx(res["variants"]["baseline"]["latency_ms"]["p50"])
    assert "latency measured by bench" in rec["cost_source"] and rec["head_costs"] is None
    seg, base = rec["segment_costs"], rec["baseline_cost"]
    # the cheapest point: relative cost is the measured latencies weighted by the exit fractions
    f = rec["validation"]["exit_fractions"]
    assert rec["validation"]["relative_cost"] == pytest.approx((f[0] * seg[0] + f[1] * (seg[0] + seg[1])) / base)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "edgebranchy.results", "variants": {}}))
    with pytest.raises(EdgeBranchyError, match="per-segment latencies"):
        calibrate_checkpoint(ck, budget=0.9, cost=str(bad), log=lambda s: None)
