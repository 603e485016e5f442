"""Load `edgebranchy.results` files (validated by `edgebranchy.artifact.results`), the report's only input."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgebranchy.artifact.results import validate_results
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.labels import run_labels
from edgebranchy.util.files import read_json


def load_results(path: str | os.PathLike) -> dict:
    """Read one results file and validate it; any problem raises EdgeBranchyError naming the file."""
    doc = read_json(path, what="results file")
    return validate_results(doc, str(path))


@dataclass(frozen=True)
class Run:
    """One validated results file with the labels a report shows for it."""

    index: int          # 1-based position in the report
    path: Path
    data: dict
    label: str          # the run's own label, else model · profile · backend/precision · batch N · date
    short_label: str    # "R1: " + what tells this run apart from the others

    @property
    def env(self) -> dict:
        return self.data["environment"]

    @property
    def baseline(self) -> dict:
        return self.data["variants"]["baseline"]

    @property
    def branchy(self) -> dict:
        return self.data["variants"]["branchy"]

    @property
    def batch_size(self) -> int:
        return self.data["config"]["batch_size"]


def load_runs(paths: list[str | os.PathLike]) -> list[Run]:
    """Load and validate every results file (all errors surface before any output is written)."""
    if not paths:
        raise EdgeBranchyError("no results files given")
    docs = [(Path(p), load_results(p)) for p in paths]
    labels = run_labels([doc for _, doc in docs])
    return [Run(index=n, path=path, data=doc, label=label, short_label=short)
            for n, ((path, doc), (label, short)) in enumerate(zip(docs, labels), start=1)]
