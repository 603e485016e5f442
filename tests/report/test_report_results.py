"""load_results: schema version, required keys and types, NaN, broken files."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from report_fixtures import build_results, write_results

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.runs import load_results, load_runs


def _without(doc: dict, dotted: str) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    obj = doc
    for key in parents:
        obj = obj[key]
    del obj[last]
    return doc


def _with(doc: dict, dotted: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    obj = doc
    for key in parents:
        obj = obj[key]
    obj[last] = value
    return doc


def test_valid_file_loads_unchanged(results_file: Path) -> None:
    doc = load_results(results_file)
    assert doc == json.loads(results_file.read_text())
    assert doc["variants"]["branchy"]["exit_fractions"] == [0.94, 0.06]


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = write_results(tmp_path / "v3.json", _with(build_results(), "schema_version", 4))
    with pytest.raises(EdgeBranchyError) as e:
        load_results(path)
    msg = str(e.value)
    assert str(path) in msg
    assert "has schema version 4; this edgebranchy reads versions 1, 2, 3" in msg


def test_other_schema_is_refused(tmp_path: Path) -> None:
    path = write_results(tmp_path / "m.json", _with(build_results(), "schema", "edgebranchy.artifact"))
    with pytest.raises(EdgeBranchyError, match="not an edgebranchy results file"):
        load_results(path)


@pytest.mark.parametrize("key", [
    "schema_version",
    "environment",
    "environment.backend",
    "config.batch_size",
    "variants.baseline",
    "variants.branchy.latency_ms.p50",
    "variants.baseline.latency_ms.samples",
    "variants.branchy.exit_fractions",
    "variants.baseline.energy.per_inference_mj",
    "calibration.validation",
])
def test_missing_key_names_file_and_key(tmp_path: Path, key: str) -> None:
    path = write_results(tmp_path / "broken.json", _without(build_results(), key))
    with pytest.raises(EdgeBranchyError) as e:
        load_results(path)
    assert str(e.value) == f"results file {path}: missing key '{key}'"


@pytest.mark.parametrize("key, value, expect", [
    ("variants.baseline.accuracy", "0.9", "should be a number, got a string"),
    ("variants.baseline.accuracy", 89.9, "must be <= 1"),              # percent, not a fraction
    ("variants.branchy.latency_ms.p99", True, "should be a number, got a boolean"),
    ("variants.branchy.latency_ms.per", "call", "expected one of 'sample', 'batch'"),
    ("variants.branchy.energy.kind", "guessed", "expected one of 'measured', 'estimated'"),
    ("config.batch_size", 0, "must be >= 1"),
    ("config.batch_size", 1.5, "should be an integer"),
    ("environment.versions", "1.0", "should be an object"),
    ("environment.cpu_cores", "two", "should be an integer, an object or null"),
    ("variants.baseline.latency_ms.samples", [], "is an empty list"),
    ("variants.baseline.energy.per_inference_mj.ci95", [1.0, 0.5], "low 1.0 > high 0.5"),
    ("variants.branchy.exit_fractions", [0.5, 0.2], "sum to 0.7, not 1"),
    ("variants.branchy.exit_counts", [9400, 500, 100], "has 3 entries but"),
    ("environment.thresholds", [0.1, 0.2, 0.3], "has 3 entries for 2 exits"),
])
def test_bad_value_names_key_and_problem(tmp_path: Path, key: str, value, expect: str) -> None:
    path = write_results(tmp_path / "bad.json", _with(build_results(), key, value))
    with pytest.raises(EdgeBranchyError) as e:
        load_results(path)
    assert str(e.value).startswith(f"results file {path}: ")
    assert expect in str(e.value)
    assert key.split(".")[-1] in str(e.value)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "trunc.json"
    path.write_text(json.dumps(build_results())[:500])
    with pytest.raises(EdgeBranchyError) as e:
        load_results(path)
    assert str(path) in str(e.value) and "not valid JSON" in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EdgeBranchyError, match="results file not found"):
        load_results(tmp_path / "nope.json")


def test_top_level_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(EdgeBranchyError, match="top level is a list"):
        load_results(path)


@pytest.mark.parametrize("key, value, word", [
    ("variants.branchy.latency_ms.p50", float("nan"), "NaN"),
    ("variants.baseline.energy.per_inference_mj.median", float("inf"), "infinite"),
])
def test_non_finite_numbers_are_rejected(tmp_path: Path, key: str, value: float, word: str) -> None:
    path = write_results(tmp_path / "nan.json", _with(build_results(), key, value), allow_nan=True)
    assert word[:3].lower() in path.read_text().lower()   # the literal really is in the file
    with pytest.raises(EdgeBranchyError) as e:
        load_results(path)
    assert str(e.value) == f"results file {path}: key '{key}' is {word}; results must hold finite numbers"


def test_nan_inside_a_list_is_located(tmp_path: Path) -> None:
    doc = build_results()
    doc["variants"]["baseline"]["latency_ms"]["samples"][7] = float("nan")
    path = write_results(tmp_path / "nan.json", doc, allow_nan=True)
    with pytest.raises(EdgeBranchyError, match=r"variants\.baseline\.latency_ms\.samples\[7\]' is NaN"):
        load_results(path)


def test_nullable_parts_are_accepted(tmp_path: Path) -> None:
    doc = build_results(with_energy=False, calibration=False)
    doc["idle"] = None
    doc["environment"]["cpu_cores"] = None
    load_results(write_results(tmp_path / "minimal.json", doc))


def test_runs_get_distinguishing_labels(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a.json", build_results())
    b = write_results(tmp_path / "b.json", build_results(profile="rpi5", batch_size=8))
    runs = load_runs([a, b])
    assert runs[0].label == "b-lenet · x86-generic · onnxruntime/fp32 · batch 1 · 2026-05-12"
    assert runs[0].short_label == "R1: x86-generic · batch 1"
    assert runs[1].short_label == "R2: rpi5 · batch 8"


def test_one_bad_file_among_many_fails_before_anything(tmp_path: Path) -> None:
    good = write_results(tmp_path / "good.json", build_results())
    bad = write_results(tmp_path / "bad.json", _without(build_results(), "variants.branchy"))
    with pytest.raises(EdgeBranchyError, match="bad.json: missing key 'variants.branchy'"):
        load_runs([good, bad])


def test_the_same_file_twice_gets_two_labels(tmp_path: Path) -> None:
    a = write_results(tmp_path / "results.json", build_results())
    later = build_results()
    later["created"] = "2026-05-12T16:40:00+00:00"
    (tmp_path / "other").mkdir()
    b = write_results(tmp_path / "other" / "results.json", later)
    runs = load_runs([a, a, b])
    labels = [r.label for r in runs]
    assert len(set(labels)) == 3 and not any("results.json" in lab for lab in labels)
    assert labels[0].endswith("2026-05-12 14:03 #1") and labels[1].endswith("2026-05-12 14:03 #2")
    assert labels[2].endswith("2026-05-12 16:40")
    assert len({r.short_label for r in runs}) == 3


def test_a_run_label_of_its_own_wins(tmp_path: Path) -> None:
    doc = build_results()
    doc["label"] = "orin · trt · batch 8 sweep"
    runs = load_runs([write_results(tmp_path / "a.json", doc), write_results(tmp_path / "b.json", build_results())])
    assert runs[0].label == "orin · trt · batch 8 sweep" and runs[0].short_label == "R1: orin · trt · batch 8 sweep"
    assert runs[1].label == "b-lenet · x86-generic · onnxruntime/fp32 · batch 1 · 2026-05-12"
