"""`edgebranchy report`: exit codes, one-line errors, stdlib-only imports at module level."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import build_results, write_results

import edgebranchy.cli.report as cli_report
from edgebranchy.cli import build_parser, main


def test_cli_writes_report_and_says_where(tmp_path: Path, results_file: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "a" / "b"
    assert main(["report", str(results_file), "--out", str(out), "--title", "Fashion run"]) == 0
    said = capsys.readouterr().out
    assert f"report written to {out / 'report.html'}" in said
    assert "R1: b-lenet · x86-generic · onnxruntime/fp32 · batch 1 · 2026-05-12: branchy is 1.97x " \
           "faster at p50" in said
    assert "\n  warning: the tail is worse" in said
    assert (out / "report.md").read_text().startswith("# Fashion run\n")
    assert "<title>Fashion run</title>" in (out / "report.html").read_text()


@pytest.mark.parametrize("content, expect", [
    ("{not json", "is not valid JSON"),
    (None, "has schema version 4; this edgebranchy reads versions 1, 2, 3"),
])
def test_cli_bad_file_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            content: str | None, expect: str) -> None:
    bad = tmp_path / "bad.json"
    if content is None:
        doc = build_results()
        doc["schema_version"] = 4
        write_results(bad, doc)
    else:
        bad.write_text(content)
    assert main(["report", str(bad), "--out", str(tmp_path / "r")]) == 2
    cap = capsys.readouterr()
    lines = cap.err.splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("edgebranchy report: error: ") and str(bad) in lines[0] and expect in lines[0]
    assert cap.out == ""
    assert not (tmp_path / "r").exists()


def test_cli_as_a_process(tmp_path: Path) -> None:
    doc = build_results()
    del doc["variants"]["branchy"]["latency_ms"]["p99"]
    bad = write_results(tmp_path / "bad.json", doc)
    proc = subprocess.run([sys.executable, "-m", "edgebranchy", "report", str(bad), "--out",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"edgebranchy report: error: results file {bad}: missing key 'variants.branchy.latency_ms.p99'"]


def test_cli_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(cli_report.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            top.add((node.module or "").split(".")[0])
    assert top <= {"__future__", "argparse"}, top
    assert cli_report.ORDER == 60


def test_compare_cli_module_imports_only_the_standard_library() -> None:
    import edgebranchy.cli.compare as cli_compare

    tree = ast.parse(Path(cli_compare.__file__).read_text())
    top = {(n.module or "").split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    top |= {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    assert top <= {"__future__", "argparse"}, top
    args = build_parser().parse_args(["compare", "a.json", "b.json", "--max-regression", "7.5%"])
    assert args.max_regression == 0.075 and args.max_accuracy_drop == 0.5 and not args.json
    assert build_parser().parse_args(["compare", "a.json", "b.json", "--max-regression", "3"]).max_regression == 0.03


def test_report_is_a_registered_subcommand() -> None:
    args = build_parser().parse_args(["report", "a.json", "b.json", "--out", "d"])
    assert args.results == ["a.json", "b.json"] and args.out == "d"
    assert args._run is cli_report.run
