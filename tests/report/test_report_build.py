"""build_report: files, the Table I summary against the results files, plots, HTML self-containment."""
from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import pytest
from report_fixtures import BuiltReport, build_results, second_run, write_results

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report import build_report

PLOTS = ["latency_cdf.png", "exit_histogram.png", "pareto.png", "energy.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


def summary_table(md: str) -> list[dict[str, str]]:
    """The rows of the Markdown table under '## Summary', as dicts keyed by the header."""
    section = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    header, rule, rows = split[0], split[1], split[2:]
    assert all(set(c) == {"-"} for c in rule)
    assert all(len(r) == len(header) for r in rows)
    return [dict(zip(header, r)) for r in rows]


def shows(text: str, value: float, min_sig: int = 3) -> bool:
    """True if `text` is `value` rounded to the digits it shows, with at least min_sig digits."""
    text = text.strip().removesuffix("x")
    decimals = len(text.split(".")[1]) if "." in text else 0
    digits = len(text.replace(".", "").replace("-", "").lstrip("0"))
    return digits >= min_sig and abs(float(text) - value) <= 0.5 * 10 ** -decimals * (1 + 1e-9)


def check_estimate(cell: str, est: dict) -> None:
    m = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell)
    assert m, cell
    assert shows(m[1], est["median"]) and shows(m[2], est["ci95"][0]) and shows(m[3], est["ci95"][1])


def test_shows_helper_can_fail() -> None:
    assert shows("0.1400", 0.14) and shows("1.97x", 1.9718)
    assert not shows("0.1400", 0.1402) and not shows("0.1", 0.1) and not shows("2.00x", 1.97)


def test_report_files_are_written(two_run_report: BuiltReport) -> None:
    files = two_run_report.files
    out = files.directory
    assert files.markdown == out / "report.md" and files.html == out / "report.html"
    assert sorted(p.name for p in files.plots) == sorted(PLOTS)
    for name in PLOTS:
        w, h = png_size((out / name).read_bytes())
        assert w > 300 and h > 200
    assert files.skipped == []
    md = files.markdown.read_text()
    for name in PLOTS:
        assert f"]({name})" in md
    assert not list(out.glob("*.tmp"))


def test_summary_table_agrees_with_results_files(two_run_report: BuiltReport) -> None:
    rows = summary_table(two_run_report.files.markdown.read_text())
    assert [(r["Run"][:2], r["Variant"]) for r in rows] == [
        ("R1", "baseline"), ("R1", "branchy"), ("R2", "baseline"), ("R2", "branchy")]
    for n, doc in enumerate(two_run_report.docs):
        env, cfg = doc["environment"], doc["config"]
        base, br = doc["variants"]["baseline"], doc["variants"]["branchy"]
        for row, v in zip(rows[2 * n: 2 * n + 2], (base, br)):
            for part in (env["model"], env["dataset"], env["profile"], env["backend"],
                         f"batch {cfg['batch_size']}"):
                assert part in row["Run"]
            assert shows(row["Acc %"], 100 * v["accuracy"])
            assert shows(row["p50 ms"], v["latency_ms"]["p50"])
            assert shows(row["p99 ms"], v["latency_ms"]["p99"])
            e = v["energy"]
            check_estimate(row["Energy mJ/inf [95% CI]"], e["per_inference_mj"])
            check_estimate(row["Dynamic mJ/inf [95% CI]"], e["dynamic_per_inference_mj"])
            assert row["Energy kind (source)"] == f"{e['kind']} ({e['source']})"
            per = cfg["batch_size"] if v["latency_ms"]["per"] == "batch" else None
            assert row["Latency per"] == (f"batch of {per}" if per else "sample")
        b_row, r_row = rows[2 * n], rows[2 * n + 1]
        assert shows(r_row["Gain p50"], base["latency_ms"]["p50"] / br["latency_ms"]["p50"])
        assert shows(r_row["Gain mean"], base["latency_ms"]["mean"] / br["latency_ms"]["mean"])
        assert shows(r_row["Energy gain"], base["energy"]["per_inference_mj"]["median"]
                     / br["energy"]["per_inference_mj"]["median"])
        assert shows(r_row["Dynamic gain"], base["energy"]["dynamic_per_inference_mj"]["median"]
                     / br["energy"]["dynamic_per_inference_mj"]["median"])
        assert [float(t) for t in r_row["Entropy T"].split(", ")] == env["thresholds"]
        exits = r_row["Exit %"].split(", ")
        assert len(exits) == len(br["exit_fractions"])
        assert all(shows(s, 100 * f, min_sig=1) for s, f in zip(exits, br["exit_fractions"]))
        assert b_row["Gain p50"] == b_row["Exit %"] == b_row["Entropy T"] == ""


def test_default_fixture_reads_like_table_one(one_run_report: BuiltReport) -> None:
    rows = summary_table(one_run_report.files.markdown.read_text())
    assert len(rows) == 2
    assert rows[1]["Exit %"] == "94.0, 6.0"
    assert rows[1]["Entropy T"] == "0.95"
    assert rows[0]["Energy kind (source)"] == "estimated (psutil-cpu-model)"


def test_two_runs_compare_side_by_side(one_run_report: BuiltReport, two_run_report: BuiltReport) -> None:
    md = two_run_report.files.markdown.read_text()
    env_header = md.split("## Environment", 1)[1].strip().splitlines()[0]
    assert "R1: x86-generic · onnxruntime/fp32 · batch 1" in env_header
    assert "R2: jetson-orin-nano · tensorrt/fp16 · batch 8" in env_header
    assert "| Results file | cpu.json | nano.json |" in md
    assert "| CPU cores | 2 | 6 logical / 6 physical |" in md
    assert "| Power mode | n/a | 15W (id 0) |" in md
    assert "| GPU | none found | Orin (nvgpu), driver 540.4.0 |" in md
    assert "edgebranchy 0.1.0, numpy 1.26.4, tensorrt 10.3.0 |" in md   # None = not installed: left out
    assert "cuda_graphs=false, workspace_mib=1024" in md
    for name in ("latency_cdf.png", "pareto.png"):   # one panel per run: twice as wide
        w1, _ = png_size((one_run_report.files.directory / name).read_bytes())
        w2, _ = png_size((two_run_report.files.directory / name).read_bytes())
        assert w2 > 1.7 * w1


def test_estimated_energy_is_labelled_estimated(two_run_report: BuiltReport) -> None:
    md = two_run_report.files.markdown.read_text()
    assert "R1 baseline: energy is ESTIMATED by a power model (source: psutil-cpu-model)" in md
    assert "R2 baseline: energy is ESTIMATED" not in md
    page = two_run_report.files.html.read_text()
    assert '<span class="estimated">estimated (psutil-cpu-model)</span>' in page
    assert '<span class="measured">measured (tegrastats:VDD_IN)</span>' in page


def test_html_is_self_contained(two_run_report: BuiltReport) -> None:
    page = two_run_report.files.html.read_text()
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page
    for attr, value in re.findall(r"\b(src|href|srcset|action)\s*=\s*\"([^\"]*)\"", page):
        assert value.startswith("data:image/png;base64,") or value.startswith("#"), (attr, value[:60])
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)">', page)
    assert len(images) == 4
    on_disk = {(two_run_report.files.directory / n).read_bytes() for n in PLOTS}
    assert {base64.b64decode(data) for data, _ in images} == on_disk
    assert all(len(alt) > 20 for _, alt in images)
    assert page.count("<figcaption>") == 4
    for part in ("AMD EPYC 7B13", "intra_op_num_threads=1", "onnxruntime 1.32.0", "fp16",
                 "How to read this", "Gain = baseline / branchy"):
        assert part in page


def test_null_calibration_skips_pareto_and_drops_stale_png(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "pareto.png").write_bytes(b"stale")
    (out / "mine.png").write_bytes(b"not ours")
    path = write_results(tmp_path / "r.json", build_results(calibration=False))
    files = build_report([path], out)
    assert not (out / "pareto.png").exists()
    assert (out / "mine.png").read_bytes() == b"not ours"
    assert len(files.plots) == 3
    assert files.skipped and files.skipped[0].startswith("pareto.png: no results file holds a calibration")
    md = files.markdown.read_text()
    assert "Not drawn: no results file holds a calibration record" in md
    assert files.html.read_text().count("<img ") == 3


def test_missing_energy_is_shown_as_not_recorded(tmp_path: Path) -> None:
    path = write_results(tmp_path / "r.json", build_results(with_energy=False))
    files = build_report([path], tmp_path / "report")
    rows = summary_table(files.markdown.read_text())
    assert rows[1]["Energy mJ/inf [95% CI]"] == "not recorded"
    assert rows[1]["Energy gain"] == rows[1]["Dynamic gain"] == "n/a"
    assert "R1 branchy: no energy reading in the results file." in files.markdown.read_text()
    assert not (tmp_path / "report" / "energy.png").exists()


def test_mixed_energy_kinds_are_flagged(tmp_path: Path) -> None:
    doc = build_results()
    doc["variants"]["baseline"]["energy"] = second_run()["variants"]["baseline"]["energy"]
    files = build_report([write_results(tmp_path / "r.json", doc)], tmp_path / "report")
    rows = summary_table(files.markdown.read_text())
    assert rows[1]["Energy gain"].endswith("x (mixed kinds)")


def test_bad_file_writes_nothing(tmp_path: Path) -> None:
    good = write_results(tmp_path / "good.json", build_results())
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(EdgeBranchyError):
        build_report([good, bad], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_out_path_that_is_a_file_is_refused(tmp_path: Path, results_file: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(EdgeBranchyError, match="is not a directory"):
        build_report([results_file], target)


def test_runs_with_different_exit_counts(tmp_path: Path) -> None:
    three = build_results(exit_counts=(6560, 2520, 920), calibration=False, seed=3)
    paths = [write_results(tmp_path / "two.json", build_results()),
             write_results(tmp_path / "three.json", three)]
    files = build_report(paths, tmp_path / "report")
    rows = summary_table(files.markdown.read_text())
    assert rows[1]["Exit %"] == "94.0, 6.0"
    assert rows[3]["Exit %"] == "65.6, 25.2, 9.2"
    assert rows[3]["Entropy T"] == "0.95, 0.5"
    assert "No calibration record in R2." in files.markdown.read_text()
    assert len(files.plots) == 4
