"""Load `edgebranchy.results` files (validated by `edgebranchy.artifact.results`), the report's only input."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgebranchy.artifact.results import validate_results
from edgebranchy.errors import EdgeBranchyError
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
    label: str          # model · dataset · profile · backend/precision · batch N
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


def _label_parts(doc: dict) -> list[str]:
    env = doc["environment"]
    return [env["model"], env["dataset"], env["profile"], f"{env['backend']}/{env['precision']}",
            f"batch {doc['config']['batch_size']}"]


def load_runs(paths: list[str | os.PathLike]) -> list[Run]:
    """Load and validate every results file (all errors surface before any output is written)."""
    if not paths:
        raise EdgeBranchyError("no results files given")
    docs = [(Path(p), load_results(p)) for p in paths]
    parts = [_label_parts(doc) for _, doc in docs]
    varying = [i for i in range(5) if len({p[i] for p in parts}) > 1]
    if not varying:
        varying = [2, 3, 4] if len(docs) > 1 else [0, 1, 2, 3, 4]
    runs = []
    for n, ((path, doc), p) in enumerate(zip(docs, parts), start=1):
        runs.append(Run(index=n, path=path, data=doc, label=" · ".join(p),
                        short_label=f"R{n}: " + " · ".join(p[i] for i in varying)))
    return runs
