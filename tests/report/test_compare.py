"""`edgebranchy compare`: matching, changes with intervals, and the exit status a CI gates on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import build_results, second_run, write_results

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.comparison import _runs_of, compare_files

from eb_testutil import run_cli


def _slower(doc: dict, factor: float, variant: str = "branchy") -> dict:
    """A copy of a results document whose `variant` ("both": every) latencies are all `factor` times longer."""
    doc = json.loads(json.dumps(doc))
    for name in ((variant,) if variant != "both" else ("baseline", "branchy")):
        lat = doc["variants"][name]["latency_ms"]
        lat["samples"] = [x * factor for x in lat["samples"]]
        for k in ("p50", "p90", "p99", "p999", "mean", "trimmed"):
            if k in lat:
                lat[k] *= factor
            if k in lat["trials"]:
                lat["trials"][k] = [x * factor for x in lat["trials"][k]]
        lat["ci95"] = [x * factor for x in lat["ci95"]]
    return doc


def _v2(*docs: dict) -> dict:
    runs = []
    for i, d in enumerate(docs, start=1):
        body = {k: v for k, v in d.items() if k not in ("schema", "schema_version")}
        runs.append({**body, "label": f"run {i}", "id": f"r{i}"})
    return {"schema": "edgebranchy.results", "version": 2, "runs": runs}


def _metric(summary: dict, name: str, run: int = 0) -> dict:
    return next(m for m in summary["matched"][run]["metrics"] if m["metric"] == name)


def test_matches_runs_and_lists_the_unmatched(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.json", build_results())
    new = tmp_path / "new.json"
    new.write_text(json.dumps(_v2(second_run(), build_results(seed=4))))
    s = compare_files(base, new)
    assert len(s["matched"]) == 1 and s["unmatched_base"] == []
    assert s["unmatched_new"] == ["run 1"] and s["matched"][0]["new"] == "run 2"
    assert not s["regressed"]
    assert len(_runs_of(new)) == 2 and len(_runs_of(base)) == 1


def test_accuracy_drop_and_gain_loss_regress(tmp_path: Path) -> None:
    doc = build_results()
    base = write_results(tmp_path / "base.json", doc)
    worse = json.loads(json.dumps(doc))
    worse["variants"]["branchy"]["accuracy"] -= 0.006    # -0.6 points
    s = compare_files(base, write_results(tmp_path / "acc.json", worse))
    acc = _metric(s, "branchy accuracy %")
    assert acc["regressed"] and acc["diff"] == pytest.approx(-0.6)
    assert not compare_files(base, write_results(tmp_path / "acc2.json", worse), max_accuracy_drop=0.7)["regressed"]
    fast_base = _slower(doc, 1 / 1.3, "baseline")         # the baseline got faster: branchy's gain fell
    s = compare_files(base, write_results(tmp_path / "gain.json", fast_base))
    assert _metric(s, "gain trimmed")["regressed"] and not _metric(s, "branchy p50 ms")["regressed"]
    assert not _metric(s, "baseline p50 ms")["gated"] and not _metric(s, "branchy p50 ms")["gated"]
    # the p50 gain is shown with its interval, not gated (a bimodal p50 jumps between trials)
    p50 = _metric(s, "gain p50")
    assert p50["change"] < -0.2 and p50["ci95"] is not None and not p50["gated"] and not p50["regressed"]
    slow_branchy = _slower(doc, 1.3)                        # branchy slower against the same baseline
    s = compare_files(base, write_results(tmp_path / "slow.json", slow_branchy))
    assert _metric(s, "gain trimmed")["regressed"] and s["regressed"]
    mean = _metric(s, "gain mean")   # shown with its interval, not gated (stalls move it between runs)
    assert mean["change"] < -0.2 and mean["ci95"][1] < 0 and not mean["gated"] and not mean["regressed"]


def test_a_machine_that_got_slower_is_not_a_regression(tmp_path: Path) -> None:
    """Issue 22: two benches of the same artifact minutes apart, everything 13.6% slower the second time
    (other jobs on the machine): branchy against its own baseline did not change, so nothing regressed; the
    absolute latencies are shown with the change, not gated."""
    doc = build_results()
    s = compare_files(write_results(tmp_path / "a.json", doc),
                      write_results(tmp_path / "b.json", _slower(doc, 1.136, "both")))
    assert not s["regressed"]
    p50 = _metric(s, "branchy p50 ms")
    assert p50["change"] == pytest.approx(0.136) and not p50["gated"] and not p50["regressed"]
    assert _metric(s, "gain p50")["change"] == pytest.approx(0.0, abs=1e-12)
    assert s["matched"][0]["trials"] == {"base": 5, "new": 5}


def test_energy_of_different_kinds_is_not_gated(tmp_path: Path) -> None:
    doc = build_results()
    other = json.loads(json.dumps(doc))
    other["variants"]["branchy"]["energy"] = json.loads(json.dumps(second_run()["variants"]["branchy"]["energy"]))
    other["variants"]["baseline"]["energy"] = json.loads(json.dumps(second_run()["variants"]["baseline"]["energy"]))
    s = compare_files(write_results(tmp_path / "a.json", doc), write_results(tmp_path / "b.json", other))
    e = _metric(s, "energy gain")
    assert not e["gated"] and not e["regressed"] and e["note"] == "not compared: energy estimated vs measured"
    same = compare_files(write_results(tmp_path / "c.json", doc), write_results(tmp_path / "d.json", doc))
    assert not _metric(same, "energy gain")["gated"] and _metric(same, "energy gain")["note"] == "estimated: not gated"
    measured = second_run()
    fell = json.loads(json.dumps(measured))
    fell["variants"]["branchy"]["energy"]["per_inference_mj"]["values"] = [
        v * 1.3 for v in measured["variants"]["branchy"]["energy"]["per_inference_mj"]["values"]]
    fell["variants"]["branchy"]["energy"]["per_inference_mj"]["median"] *= 1.3
    s = compare_files(write_results(tmp_path / "m1.json", measured), write_results(tmp_path / "m2.json", fell))
    e = _metric(s, "energy gain")
    assert e["gated"] and e["regressed"] and e["change"] == pytest.approx(1 / 1.3 - 1)


def test_nothing_matches_is_bad_input(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a.json", build_results())
    b = write_results(tmp_path / "b.json", second_run())
    with pytest.raises(EdgeBranchyError, match="no run of .*b.json matches a run of .*a.json"):
        compare_files(a, b)


@pytest.fixture(scope="module")
def real_results(tiny_artifact, tmp_path_factory) -> Path:
    """A results file from a real (short) bench of the tiny artifact."""
    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.session import run_bench

    out = tmp_path_factory.mktemp("cmp") / "base.json"
    run_bench(BenchConfig(artifact=str(tiny_artifact), out=str(out), backend="onnxruntime", profile="x86-cpu",
                          power="estimate", dataset="synthetic", batch_size=1, samples=40, trials=4, warmup=2,
                          min_window_s=0.12, idle_s=0.12, segment_repeats=5), log=lambda s: None, progress=False)
    return out


def _slower_file(src: Path, dst: Path, factor: float) -> Path:
    """A copy of a version-2 results file (and its latency side file) with branchy `factor` times slower."""
    from edgebranchy.artifact.latencies import load_latencies, write_latencies

    doc = json.loads(src.read_text())
    arrays = {}
    for run in doc["runs"]:
        lat = load_latencies(src, run["id"], doc=doc)
        for name, a in lat.items():
            arrays[f"{run['id']}/{name}"] = (a * factor if name == "branchy" else a).tolist()
        stats = run["variants"]["branchy"]["latency_ms"]
        for k in ("p50", "p90", "p99", "p999", "mean", "trimmed"):
            if k in stats:
                stats[k] *= factor
                stats["trials"][k] = [x * factor for x in stats["trials"][k]]
        stats["ci95"] = [x * factor for x in stats["ci95"]]
        run.pop("gains", None)  # stored gains would be stale: compare recomputes them
    doc["latencies"], doc["latencies_sha256"] = write_latencies(dst, arrays)
    dst.write_text(json.dumps(doc))
    return dst


def test_compare_cli_gates_on_a_regression(real_results: Path, tmp_path: Path) -> None:
    doc = json.loads(real_results.read_text())
    assert doc["version"] == 3
    same = run_cli("compare", real_results, real_results)
    assert same.returncode == 0, same.stderr
    assert "no regression in 1 matched run(s)" in same.stdout and "branchy p50 ms/sample" in same.stdout
    assert "trials (the replicates of each interval): base 4, new 4" in same.stdout
    # x3: beyond noise even where the branchy median falls between its two modes (fast early exits, slow rest)
    slow = _slower_file(real_results, tmp_path / "slow.json", 3.0)
    r = run_cli("compare", real_results, slow, "--max-regression", "5%")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSED" in r.stdout and "REGRESSION in 1 of 1 matched run(s)" in r.stdout
    assert run_cli("compare", real_results, slow, "--max-regression", "250%").returncode == 0
    j = run_cli("compare", real_results, slow, "--json")
    assert j.returncode == 1
    s = json.loads(j.stdout)
    assert s["schema"] == "edgebranchy.compare" and s["regressed"] is True
    p50 = next(m for m in s["matched"][0]["metrics"] if m["metric"] == "branchy p50 ms")
    assert p50["change"] == pytest.approx(2.0) and p50["ci95"][0] > 0 and not p50["regressed"]   # shown
    gain = next(m for m in s["matched"][0]["metrics"] if m["metric"] == "gain trimmed")
    assert gain["change"] == pytest.approx(1 / 3 - 1) and gain["ci95"][1] < 0 and gain["regressed"]
    assert gain["trials"] == [4, 4]
    v1 = tmp_path / "v1.json"  # the same run as a version-1 file (latencies inline) against the v2 file
    from edgebranchy.artifact.latencies import load_latencies

    run = json.loads(json.dumps(doc["runs"][0]))
    for name, a in load_latencies(real_results, run["id"], doc=doc).items():
        run["variants"][name]["latency_ms"]["samples"] = a.tolist()
    body = {k: v for k, v in run.items() if k not in ("id", "label", "gains")}
    v1.write_text(json.dumps({"schema": "edgebranchy.results", "schema_version": 1, "created": doc["created"], **body}))
    assert run_cli("compare", v1, real_results).returncode == 0


def test_compare_cli_bad_input_is_status_2(real_results: Path, tmp_path: Path) -> None:
    missing = run_cli("compare", real_results, tmp_path / "nope.json")
    assert missing.returncode == 2 and "error" in missing.stderr
    bad = run_cli("compare", real_results, real_results, "--max-regression", "lots")
    assert bad.returncode == 2 and "--max-regression" in bad.stderr


def test_one_trial_cannot_fail_the_gate_and_says_so(tmp_path: Path) -> None:
    from edgebranchy.report.comparison import render_text

    doc = build_results()
    one = _slower(doc, 1.5)   # branchy 50% slower, but measured in one trial: noise cannot be told apart
    for name in ("baseline", "branchy"):
        lat = one["variants"][name]["latency_ms"]
        lat["trials"] = {k: v[:1] for k, v in lat["trials"].items()}
        lat["trials"]["calls"] = [len(lat["samples"])]
    one["config"]["trials"] = 1
    s = compare_files(write_results(tmp_path / "a.json", doc), write_results(tmp_path / "one.json", one))
    gain = _metric(s, "gain trimmed")
    assert gain["ci95"] is None and gain["note"] == "no interval: 1 trial on one side"
    assert not gain["testable"] and not s["regressed"]
    assert s["matched"][0]["untested"] == ["gain trimmed"]
    text = render_text(s)
    assert "trials (the replicates of each interval): base 5, new 1" in text
    assert "cannot tell noise from change for gain trimmed: 1 trial on one side" in text
    assert "(untested: no interval)" in text
