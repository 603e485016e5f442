"""Results schema version 2: runs with ids and labels, raw latencies in OUT.latencies.npz, version 1 still read."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import build_results, write_results

from edgebranchy.artifact.latencies import load_latencies
from edgebranchy.artifact.results import load_runs_doc, runs_of, unique_labels, validate_results
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.bench.document import results_document
from edgebranchy.report.runs import load_runs


def _run(**kw) -> dict:
    """A version-1 fixture's body: what one run of a version-2 document holds."""
    return {k: v for k, v in build_results(**kw).items() if k not in ("schema", "schema_version")}


def _write_v2(path: Path, runs: list[dict]) -> dict:
    doc = results_document(path, runs)
    path.write_text(json.dumps(doc))
    return doc


def test_v2_round_trip_moves_raw_latencies_to_the_side_file(tmp_path: Path) -> None:
    runs = [_run(), _run(batch_size=8, per="batch", seed=1)]
    out = tmp_path / "r.json"
    doc = _write_v2(out, runs)
    assert doc["version"] == 3 and doc["latencies"] == "r.json.latencies.npz"
    assert [r["id"] for r in doc["runs"]] == ["r1", "r2"] and len({r["label"] for r in doc["runs"]}) == 2
    validate_results(json.loads(out.read_text()), str(out))
    got = load_runs_doc(out)
    for given, run in zip(runs, got):
        for name in ("baseline", "branchy"):
            lat = run["variants"][name]["latency_ms"]
            assert "samples" not in lat and lat["p99"] == given["variants"][name]["latency_ms"]["p99"]
            raw = load_latencies(out, run["id"])[name]
            assert np.array_equal(raw, given["variants"][name]["latency_ms"]["samples"])
            assert lat["count"] == raw.size
    assert "samples" in runs[0]["variants"]["baseline"]["latency_ms"]  # the runs given are not modified
    # smaller than the same figures inline
    inline = len(json.dumps(runs))
    assert out.stat().st_size + (tmp_path / "r.json.latencies.npz").stat().st_size < inline
    # the report: one Run per run, raw latencies put back for the plots
    loaded = load_runs([out])
    assert [r.label for r in loaded] == [r["label"] for r in doc["runs"]]
    assert loaded[1].baseline["latency_ms"]["samples"] == runs[1]["variants"]["baseline"]["latency_ms"]["samples"]


def test_v1_file_is_one_run(tmp_path: Path) -> None:
    path = write_results(tmp_path / "old.json", build_results())
    (run,) = load_runs_doc(path)
    assert run["id"] == "r1" and "label" not in run  # a v1 run has no label of its own: the report names it
    assert "schema" not in run and run["variants"]["branchy"]["exit_counts"] == [9400, 600]
    raw = build_results()["variants"]["baseline"]["latency_ms"]["samples"]
    assert load_latencies(path, "r1")["baseline"].tolist() == raw  # inline in version 1
    (r,) = load_runs([path])
    assert r.has_latencies and r.notes == ()


def test_v2_validation_names_the_run(tmp_path: Path) -> None:
    doc = results_document(tmp_path / "v.json", [_run(), _run(profile="rpi5")])
    validate_results(copy.deepcopy(doc), "v.json")
    bad = copy.deepcopy(doc)
    del bad["runs"][1]["variants"]["branchy"]["latency_ms"]["p50"]
    with pytest.raises(EdgeBranchyError, match=r"v.json \(run r2\): missing key 'variants.branchy.latency_ms.p50'"):
        validate_results(bad, "v.json")
    bad = copy.deepcopy(doc)
    bad["runs"][1]["id"] = "r1"
    with pytest.raises(EdgeBranchyError, match="repeats the id 'r1'"):
        validate_results(bad, "v.json")
    with pytest.raises(EdgeBranchyError, match="'runs' is an empty list"):
        validate_results({**doc, "runs": []}, "v.json")
    ok = copy.deepcopy(doc)
    ok["runs"][0]["gains"] = {"p50": 2.0}   # artifact/gains.run_gains: optional, and then its declared schema
    with pytest.raises(EdgeBranchyError, match=r"v.json \(run r1\): key 'gains' misses the key"):
        validate_results(ok, "v.json")
    from edgebranchy.artifact.gains import run_gains

    ok["runs"][0]["gains"] = run_gains(ok["runs"][0])
    validate_results(ok, "v.json")
    ok["runs"][0]["accuracy_pairs"] = {"baseline_only": 3, "branchy_only": 5, "n": 100}  # optional, checked
    validate_results(copy.deepcopy(ok), "v.json")
    for pairs, match in (({"baseline_only": -1, "branchy_only": 5, "n": 100}, "baseline_only' should be >= 0"),
                         ({"baseline_only": 60, "branchy_only": 50, "n": 100}, "more discordant samples"),
                         ({"baseline_only": 1.5, "branchy_only": 5, "n": 100}, "should be an integer")):
        bad = copy.deepcopy(ok)
        bad["runs"][0]["accuracy_pairs"] = pairs
        with pytest.raises(EdgeBranchyError, match=match):
            validate_results(bad, "v.json")
    ok["runs"][0]["gains"] = [2.0]
    with pytest.raises(EdgeBranchyError, match="'gains' should be an object"):
        validate_results(ok, "v.json")
    v1 = build_results()
    del v1["variants"]["baseline"]["latency_ms"]["samples"]  # version 1 keeps its latencies inline
    with pytest.raises(EdgeBranchyError, match="missing key 'variants.baseline.latency_ms.samples'"):
        validate_results(v1, "old.json")
    assert runs_of(build_results())[0]["id"] == "r1"


def test_unique_labels():
    assert unique_labels(["a", "b", "a", "a"]) == ["a", "b", "a (2)", "a (3)"]
    out = unique_labels(["x", "x", "x (2)"])
    assert len(set(out)) == 3 and out[0] == "x"


def test_two_files_with_the_same_label_get_distinct_ones(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _write_v2(a, [_run()])
    _write_v2(b, [_run()])
    runs = load_runs([a, b])
    assert runs[0].label != runs[1].label and runs[1].label.endswith("#2")  # report.labels: time of day, then #k
    assert runs[0].short_label != runs[1].short_label


def test_report_without_the_side_file_still_builds(tmp_path: Path) -> None:
    from edgebranchy.report import build_report

    out = tmp_path / "r.json"
    _write_v2(out, [_run()])
    (tmp_path / "r.json.latencies.npz").unlink()
    files = build_report([out], tmp_path / "rep")
    assert files.html.is_file()
    (run,) = load_runs([out])
    assert not run.has_latencies and "r.json.latencies.npz" in run.notes[0] and "left out" in run.notes[0]


def test_v3_records_the_trials_and_v2_still_loads(tmp_path: Path) -> None:
    """Version 3: every variant's per-trial statistics (the replicates of every interval) and per-trial
    energies; a run of one trial may have no interval. A version-2 file, which has none of it, still loads."""
    doc = results_document(tmp_path / "v.json", [_run()])
    validate_results(copy.deepcopy(doc), "v.json")
    lat = doc["runs"][0]["variants"]["branchy"]["latency_ms"]
    assert lat["trials"]["calls"] == [80] * 5 and sum(lat["trials"]["calls"]) == lat["count"]
    for mutate, match in (
            (lambda r: r["variants"]["branchy"]["latency_ms"].pop("trials"),
             "missing key 'variants.branchy.latency_ms.trials'"),
            (lambda r: r["variants"]["branchy"]["latency_ms"]["trials"]["calls"].append(1),
             "'variants.branchy.latency_ms.trials.p50' has 5 entries for 6 trials"),
            (lambda r: r["variants"]["branchy"]["latency_ms"]["trials"].update(calls=[81] * 5),
             "add up to 405 calls but the run has 400 latencies"),
            (lambda r: r["variants"]["baseline"]["energy"]["per_inference_mj"]["trials"].pop(),
             "'variants.baseline.energy.per_inference_mj.trials' has 4 entries but"),
            (lambda r: r["variants"]["baseline"]["energy"]["per_inference_mj"].pop("values"),
             "missing key 'variants.baseline.energy.per_inference_mj.values'")):
        bad = copy.deepcopy(doc)
        mutate(bad["runs"][0])
        with pytest.raises(EdgeBranchyError, match=match):
            validate_results(bad, "v.json")
    one = copy.deepcopy(doc)
    one["runs"][0]["variants"]["branchy"]["latency_ms"]["ci95"] = None   # one trial: no interval
    validate_results(one, "v.json")
    v2 = copy.deepcopy(doc)
    v2["version"] = 2
    for v in v2["runs"][0]["variants"].values():
        del v["latency_ms"]["trials"]
        for key in ("per_inference_mj", "dynamic_per_inference_mj"):
            del v["energy"][key]["values"], v["energy"][key]["trials"]
    validate_results(copy.deepcopy(v2), "v2.json")
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    assert load_runs_doc(tmp_path / "v2.json")[0]["variants"]["branchy"]["latency_ms"]["p50"] == lat["p50"]
    v2["runs"][0]["variants"]["branchy"]["latency_ms"]["ci95"] = None
    with pytest.raises(EdgeBranchyError, match="'variants.branchy.latency_ms.ci95' should be a list"):
        validate_results(v2, "v2.json")
    ctx = copy.deepcopy(doc)
    ctx["runs"][0]["accuracy_context"] = {"classes": 4, "chance": 0.25, "exit_accuracy": [0.9, 1.2]}
    with pytest.raises(EdgeBranchyError, match=r"accuracy_context.exit_accuracy\[1\]' is 1.2"):
        validate_results(ctx, "v.json")
