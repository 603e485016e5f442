"""build_report: files, the verdict, the main and details tables against the results files, plots, HTML."""
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


def summary_table(md: str, heading: str = "## Details per variant") -> list[dict[str, str]]:
    """The rows of the Markdown table under `heading` (default: the details table), as dicts keyed by the header."""
    section = md.split(heading, 1)[1].split("\n## ", 1)[0]
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


def main_table(md: str) -> list[dict[str, str]]:
    return summary_table(md, "## Summary: branchy vs baseline")


def value_and_interval(cell: str) -> tuple[str, str, str]:
    m = re.fullmatch(r"(\S+)(?: \(.*\))? \[(\S+), (\S+)\]", cell)
    assert m, cell
    return m[1], m[2], m[3]


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
            for part in (env["model"], env["profile"], env["backend"], f"batch {cfg['batch_size']}",
                         doc["created"][:10]):
                assert part in row["Run"]
            assert shows(row["Acc %"], 100 * v["accuracy"])
            assert shows(row["p50 ms"], v["latency_ms"]["p50"])
            assert shows(row["p99 ms"], v["latency_ms"]["p99"])
            assert shows(row["mean ms"], v["latency_ms"]["mean"])
            assert shows(row["mean ms"], v["latency_ms"]["mean"])
            e = v["energy"]
            check_estimate(row["Energy mJ/inf [95% CI]"], e["per_inference_mj"])
            check_estimate(row["Dynamic mJ/inf [95% CI]"], e["dynamic_per_inference_mj"])
            assert row["Energy kind (source)"] == f"{e['kind']} ({e['source']})"
            per = cfg["batch_size"] if v["latency_ms"]["per"] == "batch" else None
            assert row["Latency per"] == (f"batch of {per}" if per else "sample")
        r_row = rows[2 * n + 1]
        assert shows(r_row["Dynamic gain"], base["energy"]["dynamic_per_inference_mj"]["median"]
                     / br["energy"]["dynamic_per_inference_mj"]["median"])
        assert [float(t) for t in r_row["Entropy T"].split(", ")] == env["thresholds"]
        assert rows[2 * n]["Entropy T"] == rows[2 * n]["Dynamic gain"] == ""


def test_main_table_agrees_with_results_files(two_run_report: BuiltReport) -> None:
    rows = main_table(two_run_report.files.markdown.read_text())
    assert [r["Run"][:2] for r in rows] == ["R1", "R2"]
    for row, doc in zip(rows, two_run_report.docs):
        base, br = doc["variants"]["baseline"], doc["variants"]["branchy"]
        for key, stat in (("Gain p50 [95% CI]", "p50"), ("Gain mean [95% CI]", "mean")):
            g, lo, hi = value_and_interval(row[key])
            ratio = base["latency_ms"][stat] / br["latency_ms"][stat]
            assert shows(g, ratio) and float(lo[:-1]) <= ratio <= float(hi[:-1])
        g, lo, hi = value_and_interval(row["Energy gain [95% CI]"])
        ratio = base["energy"]["per_inference_mj"]["median"] / br["energy"]["per_inference_mj"]["median"]
        assert shows(g, ratio) and f"({br['energy']['kind']})" in row["Energy gain [95% CI]"]
        d, lo, hi = value_and_interval(row["Accuracy Δ points [95% CI]"])
        assert abs(float(d) - 100 * (br["accuracy"] - base["accuracy"])) < 0.006
        assert float(lo) < float(d) < float(hi)
        exits = row["Exit %"].split(" / ")
        assert len(exits) == len(br["exit_fractions"])
        assert all(shows(s, 100 * f, min_sig=1) for s, f in zip(exits, br["exit_fractions"]))
        p99 = 100 * (br["latency_ms"]["p99"] / base["latency_ms"]["p99"] - 1)
        assert row["p99 change [95% CI]"].startswith(f"{p99:+.0f}%")
    assert rows[0]["Branchy p50 per sample vs R1 [95% CI]"] == "reference"
    r1 = two_run_report.docs[0]["variants"]["branchy"]["latency_ms"]["p50"]
    r2 = two_run_report.docs[1]["variants"]["branchy"]["latency_ms"]["p50"] / 8   # per batch of 8
    assert rows[1]["Branchy p50 per sample vs R1 [95% CI]"].startswith(f"{100 * (r2 / r1 - 1):+.1f}%")


def test_verdict_opens_the_report(two_run_report: BuiltReport) -> None:
    md = two_run_report.files.markdown.read_text()
    head = md.split("## Summary", 1)[0]
    assert "## Verdict" in head
    assert "**R1: b-lenet · fashion-mnist · x86-generic" not in head   # one dataset: not in the label
    assert "**R1: b-lenet · x86-generic · onnxruntime/fp32 · batch 1 · 2026-05-12**: branchy is 1.97x faster" in head
    assert "**R2: b-lenet · jetson-orin-nano · tensorrt/fp16 · batch 8 · 2026-05-12**: branchy is" in head
    assert "- warning: the tail is worse" in head
    assert "nan" not in md.lower().replace("nano", "")
    page = two_run_report.files.html.read_text()
    assert page.index('id="verdict"') < page.index('id="summary"') < page.index('id="details"')


def test_a_losing_run_reads_as_a_loss(tmp_path: Path) -> None:
    doc = build_results(baseline_p50=0.07, branchy_p50=0.09, exit_counts=(0, 10000), calibration=False)
    files = build_report([write_results(tmp_path / "lose.json", doc)], tmp_path / "report")
    md = files.markdown.read_text()
    verdict = md.split("## Verdict", 1)[1].split("## Summary", 1)[0]
    assert "branchy is SLOWER than the baseline at p50" in verdict
    assert "- warning: early exit does not pay here" in verdict
    assert "- warning: no sample leaves early (exits 0.0% / 100.0%)" in verdict
    assert "- warning: the artifact is uncalibrated" in verdict
    row = main_table(md)[0]
    assert row["Gain p50 [95% CI]"].split(" [")[0].endswith("x (slower)")
    page = files.html.read_text()
    gain = re.search(r'<td class="num"><span class="(\w+)">(\d\.\d+x) \(slower\)</span>', page)
    assert gain and gain[1] == "loss" and float(gain[2][:-1]) < 1
    assert '<p class="verdict warn">' in page
    win = build_report([write_results(tmp_path / "win.json", build_results())], tmp_path / "r2").html.read_text()
    assert "(slower)" not in win and '<span class="win">1.97x</span>' in win


def test_default_fixture_reads_like_table_one(one_run_report: BuiltReport) -> None:
    md = one_run_report.files.markdown.read_text()
    rows = summary_table(md)
    assert len(rows) == 2 and len(rows[0]) == 12 and len(main_table(md)[0]) == 8
    assert main_table(md)[0]["Exit %"] == "94.0 / 6.0"
    assert rows[1]["Entropy T"] == "0.95"
    assert "Table I" not in md
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
    assert rows[1]["Dynamic gain"] == "n/a"
    assert main_table(files.markdown.read_text())[0]["Energy gain [95% CI]"] == "not recorded"
    assert "energy not recorded" in files.markdown.read_text().split("## Summary")[0]
    assert "R1 branchy: no energy reading in the results file." in files.markdown.read_text()
    assert not (tmp_path / "report" / "energy.png").exists()


def test_mixed_energy_kinds_are_flagged(tmp_path: Path) -> None:
    doc = build_results()
    doc["variants"]["baseline"]["energy"] = second_run()["variants"]["baseline"]["energy"]
    files = build_report([write_results(tmp_path / "r.json", doc)], tmp_path / "report")
    rows = summary_table(files.markdown.read_text())
    assert rows[1]["Dynamic gain"].endswith("x (mixed kinds)")
    assert "x (mixed) [" in main_table(files.markdown.read_text())[0]["Energy gain [95% CI]"]
    assert "(mixed kinds: one measured, one estimated)" in files.markdown.read_text()


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
    main = main_table(files.markdown.read_text())
    assert main[0]["Exit %"] == "94.0 / 6.0"
    assert main[1]["Exit %"] == "65.6 / 25.2 / 9.2"
    assert rows[3]["Entropy T"] == "0.95, 0.5"
    assert "No calibration record in R2." in files.markdown.read_text()
    assert len(files.plots) == 4


def test_pareto_labels_fit_and_do_not_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two panels, a long cost source: every axis label and title lies inside the figure, none overlap."""
    from edgebranchy.report import plots
    from edgebranchy.report.runs import Run

    figs = []
    real = plots.png
    monkeypatch.setattr(plots, "png", lambda fig: (figs.append(fig), fig.canvas.draw(), b"")[2])
    a, b = build_results(), second_run()
    for doc in (a, b):
        doc["calibration"]["cost_source"] = "latency measured by bench on jetson-orin-nano (tensorrt, batch 8): r.json"
    runs = [Run(index=i, path=Path(f"r{i}.json"), data=d, label=f"run {i}", short_label=f"R{i}: run {i}")
            for i, d in enumerate((a, b), start=1)]
    plots.pareto(runs)
    monkeypatch.setattr(plots, "png", real)
    fig = figs[0]
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = []
    for ax in fig.axes:
        for t in (ax.xaxis.label, ax.yaxis.label, ax.title):
            ext = t.get_window_extent(renderer)
            assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1, t.get_text()
            texts.append(ext)
        assert "from measured costs" in ax.get_xlabel()
    for i, e in enumerate(texts):
        assert not any(e.overlaps(f) for f in texts[i + 1:])


def test_estimate_source_is_not_repeated(tmp_path: Path) -> None:
    doc = build_results(energy_source="estimate")
    md = build_report([write_results(tmp_path / "r.json", doc)], tmp_path / "report").markdown.read_text()
    assert "estimated (estimate)" not in md and "(source: estimate)" not in md
    assert summary_table(md)[0]["Energy kind (source)"] == "estimated"
    assert "R1 baseline: energy is ESTIMATED by a power model, not measured." in md
