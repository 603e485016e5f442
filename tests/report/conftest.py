"""Shared fixtures for the report tests: results files built by report_fixtures.build_results."""
from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import BuiltReport, build_results, second_run, write_results

from edgebranchy.report import build_report


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    return write_results(tmp_path / "results.json", build_results())


@pytest.fixture(scope="session")
def one_run_report(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    d = tmp_path_factory.mktemp("one")
    docs = [build_results()]
    paths = [write_results(d / "cpu.json", docs[0])]
    return BuiltReport(docs, paths, build_report(paths, d / "report"))


@pytest.fixture(scope="session")
def two_run_report(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    d = tmp_path_factory.mktemp("two")
    docs = [build_results(), second_run()]
    paths = [write_results(d / "cpu.json", docs[0]), write_results(d / "nano.json", docs[1])]
    return BuiltReport(docs, paths, build_report(paths, d / "out" / "report"))
