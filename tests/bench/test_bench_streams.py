"""bench --streams: N concurrent clients (threads or processes) on real ONNX Runtime sessions; the figures are
checked against what the clients recorded (request counts, gains, scaling), the thread counts against the CPUs,
the file against its validator, and the report draws throughput and p99 against N."""
from __future__ import annotations

import json

import pytest

from edgebranchy.artifact.streams import validate_streams
from edgebranchy.bench.streams import StreamsConfig, run_streams
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.cpus import CpuBudget
from eb_testutil import run_cli


def _cfg(art, out, **kw):
    base = dict(artifact=str(art), out=str(out), streams=[1, 2], seconds=0.3, trials=1, warmup=5, samples=60,
                clients="threads", dataset="synthetic")
    return StreamsConfig(**{**base, **kw})


def _consistent(doc):
    validate_streams(doc, "doc")
    first = doc["points"][0]
    for p in doc["points"]:
        b, y = p["variants"]["baseline"], p["variants"]["branchy"]
        assert p["gain"] == pytest.approx(y["throughput_sps"] / b["throughput_sps"])
        for v in (b, y):
            assert len(v["per_stream"]) == p["streams"] and all(s["requests"] > 0 for s in v["per_stream"])
            assert 0 < v["p50_ms"] <= v["p99_ms"]
        assert sum(y["exit_fractions"]) == pytest.approx(1.0)
        assert p["scaling"]["branchy"] == pytest.approx(y["throughput_sps"] / first["variants"]["branchy"]
                                                        ["throughput_sps"])
    assert first["scaling"] == {"baseline": 1.0, "branchy": 1.0}


def test_thread_clients_back_to_back(tiny_artifact, tmp_path):
    doc = run_streams(_cfg(tiny_artifact, tmp_path / "s.json", trials=2))
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads(json.dumps(doc))
    assert [p["streams"] for p in doc["points"]] == [1, 2]
    _consistent(doc)
    assert all(p["threads_per_session"] == 1 for p in doc["points"])  # ONNX Runtime's default: 1, always fits
    assert all(len(v["trial_throughput_sps"]) == 2 for p in doc["points"] for v in p["variants"].values())


def test_fixed_rate_sends_exactly_rate_times_seconds(tiny_artifact, tmp_path):
    """At 100 requests/s for 0.5 s, request i is due at i/100: exactly 50 per stream and window, however slow."""
    doc = run_streams(_cfg(tiny_artifact, tmp_path / "s.json", rate=100.0, seconds=0.5, trials=2))
    _consistent(doc)
    for p in doc["points"]:
        for v in p["variants"].values():
            assert [s["requests"] for s in v["per_stream"]] == [100] * p["streams"]
    assert doc["config"]["rate"] == 100.0


@pytest.mark.parametrize("cpus,asked,expected", [(4, 0, [4, 2, 1]), (4, None, [1, 1, 1]), (4, 3, [3, 2, 1]),
                                                 (8, 0, [8, 4, 2])])
def test_threads_per_session_never_exceed_the_cpus(tiny_artifact, tmp_path, monkeypatch, cpus, asked, expected):
    import edgebranchy.util.cpus as cpus_mod

    monkeypatch.setattr(cpus_mod, "usable_cpus", lambda root="/": CpuBudget(cpus, 64, cpus, None, "affinity"))
    doc = run_streams(_cfg(tiny_artifact, tmp_path / "s.json", streams=[1, 2, 4], threads=asked, seconds=0.1,
                           warmup=1))
    got = [p["threads_per_session"] for p in doc["points"]]
    assert got == expected   # what the clients' runners really opened with (run_streams checks it)
    assert all(n * t <= cpus for n, t in zip([1, 2, 4], got))
    assert doc["environment"]["cpus"]["count"] == cpus


def test_process_clients_through_the_cli_and_the_report(tiny_artifact, tmp_path):
    out = tmp_path / "s.json"
    r = run_cli("bench", tiny_artifact, "--streams", "1,2", "--stream-seconds", "0.3", "--trials", "1",
                "--dataset", "synthetic", "--samples", "60", "--profile", "x86-cpu", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "gain" in r.stdout and f"results: {out}" in r.stdout
    doc = json.loads(out.read_text())
    _consistent(doc)
    assert doc["config"]["clients"] == "processes"
    rep = run_cli("report", out, "--out", tmp_path / "rep")
    assert rep.returncode == 0, rep.stderr
    assert {p.name for p in (tmp_path / "rep").glob("*.png")} == {"streams_throughput.png", "streams_p99.png"}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.count("| s.json |") == 2


def test_a_streams_file_and_a_results_file_make_separate_reports(tmp_path):
    from edgebranchy.report import build_report

    (tmp_path / "s.json").write_text(json.dumps({"schema": "edgebranchy.streams", "version": 1, "config": {},
                                                 "points": []}))
    (tmp_path / "r.json").write_text(json.dumps({"schema": "edgebranchy.results", "version": 3, "runs": []}))
    with pytest.raises(EdgeBranchyError, match="report of their own"):
        build_report([tmp_path / "s.json", tmp_path / "r.json"], tmp_path / "rep")
    with pytest.raises(EdgeBranchyError, match="points"):
        build_report([tmp_path / "s.json"], tmp_path / "rep")


@pytest.mark.parametrize("change,message", [
    (dict(streams=[]), "`streams`"), (dict(streams=[0]), "`streams`"), (dict(rate=0.0), "`rate`"),
    (dict(seconds=0), "`seconds`"), (dict(clients="fibres"), "`clients`"), (dict(threads=-1), "`threads`")])
def test_bad_settings_are_user_errors(tiny_artifact, tmp_path, change, message):
    with pytest.raises(EdgeBranchyError, match=message):
        run_streams(_cfg(tiny_artifact, tmp_path / "s.json", **change))
    assert not (tmp_path / "s.json").exists()


def test_a_failing_client_is_one_error(tiny_artifact, tmp_path):
    with pytest.raises(EdgeBranchyError, match="stream client .* failed"):
        run_streams(_cfg(tiny_artifact, tmp_path / "s.json", backend_options={"graph_optimization": "nonsense"}))


def _point(n, base, branchy):
    return {"streams": n, "gain": sum(branchy) / sum(base),
            "variants": {"baseline": {"trial_throughput_sps": list(base)},
                         "branchy": {"trial_throughput_sps": list(branchy)}}}


def test_gain_intervals_cover_an_unchanged_gain_at_their_level():
    """A/A: the gain is the same at N=1 and N=2 (1.75x), each trial's throughputs shifted by a shared slow spell
    and their own multiplicative noise; the 95% interval of gain(N=2) / gain(N=1) holds 1 in about 95% of sweeps,
    and each point's gain interval holds 1.75 as often."""
    import numpy as np

    from edgebranchy.bench.streams import gain_intervals

    rng = np.random.default_rng(7)
    sweeps, trials, covered, gain_cov = 2000, 10, 0, 0
    for _ in range(sweeps):
        points = []
        for n, rate in ((1, 15000.0), (2, 30000.0)):
            spell = np.exp(rng.normal(0, 0.04, trials))      # both variants of a trial share it
            base = rate * spell * np.exp(rng.normal(0, 0.03, trials))
            branchy = 1.75 * rate * spell * np.exp(rng.normal(0, 0.03, trials))
            points.append(_point(n, base, branchy))
        gain_intervals(points)
        lo, hi = points[1]["gain_vs_first_ci"]
        covered += lo <= 1.0 <= hi
        lo, hi = points[1]["gain_ci"]
        gain_cov += lo <= 1.75 <= hi
        assert points[0]["gain_vs_first"] == 1.0 and points[0]["gain_vs_first_ci"] is None
    assert 0.93 <= covered / sweeps <= 0.975
    assert 0.93 <= gain_cov / sweeps <= 0.975


def test_gain_intervals_see_a_gain_that_fell_and_need_two_trials():
    from edgebranchy.bench.streams import gain_intervals

    one = [_point(1, [100.0, 101, 99, 100], [175.0, 176, 174, 175]),
           _point(2, [200.0, 202, 198, 200], [300.0, 301, 299, 300])]   # 1.75x -> 1.50x
    gain_intervals(one)
    assert one[1]["gain_vs_first_ci"][1] < 1.0
    few = [_point(1, [100.0], [175.0]), _point(2, [200.0], [350.0])]
    gain_intervals(few)
    assert few[1]["gain_ci"] is None and few[1]["gain_vs_first_ci"] is None
    assert few[1]["gain_vs_first"] == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [[2.0, 1.0], [1.0], "1.5", [float("nan"), 2.0]])
def test_a_malformed_gain_interval_is_refused(bad):
    doc = {"schema": "edgebranchy.streams", "version": 1, "config": {},
           "points": [{"streams": 1, "gain": 1.5, "gain_ci": bad,
                       "variants": {v: {"per_stream": [{}], "throughput_sps": 1.0, "p50_ms": 1.0, "p99_ms": 1.0}
                                    for v in ("baseline", "branchy")}}]}
    with pytest.raises(EdgeBranchyError, match="gain_ci"):
        validate_streams(doc, "s.json")
    doc["points"][0]["gain_ci"] = [1.4, 1.6]
    assert validate_streams(doc, "s.json") is doc
