"""Load `edgebranchy.results` files (validated by `edgebranchy.artifact.results`), the report's only input.

A file of version 2 or 3 holds one run per combination of a sweep; a report gets one `Run` per run of every
file given (a version-1 file is one run). The raw latencies come from the file's side file
(OUT.latencies.npz) and are put back under `variants.*.latency_ms.samples`; when the side file is
missing or does not match, the run has no samples and `Run.notes` says why (statistics are all in the
results file).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgebranchy.artifact.results import runs_of, validate_results
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.report.labels import run_labels
from edgebranchy.util.readers import load_json

TRIAL_LOG_HINT = ("this is a trial log of an unfinished bench; finish it with edgebranchy bench ... --resume "
                  "(the same command, with --resume), then give the results file")


def _refuse_trial_log(path: Path) -> None:
    if path.suffix == ".jsonl":
        raise EdgeBranchyError(f"{path}: {TRIAL_LOG_HINT}")


def load_results(path: str | os.PathLike) -> dict:
    """Read one results file and validate it; any problem raises EdgeBranchyError naming the file."""
    _refuse_trial_log(Path(path))
    doc = load_json(path, "results")
    return validate_results(doc, str(path))


@dataclass(frozen=True)
class Run:
    """One run of a validated results file with the labels a report shows for it."""

    index: int          # 1-based position in the report
    path: Path
    data: dict          # the run (environment, config, variants, ...), raw latencies put back when available
    label: str          # model · device profile · backend/precision · batch N · form · date
    short_label: str    # "R1: " + what tells this run apart from the others
    run_id: str = "r1"  # the run's id within its file
    notes: tuple = field(default_factory=tuple)   # e.g. why its raw latencies are missing

    @property
    def env(self) -> dict:
        return self.data["environment"]

    @property
    def baseline(self) -> dict:
        return self.data["variants"]["baseline"]

    def exit_label(self, k: int) -> str:
        """Exit k as calibrate numbered it too (`exit 1 (model exit 2)` where export fused an exit away)."""
        from edgebranchy.artifact.manifest import exit_label

        return exit_label(k, (self.data.get("environment") or {}).get("model_exits"))

    @property
    def branchy(self) -> dict:
        return self.data["variants"]["branchy"]

    @property
    def batch_size(self) -> int:
        return self.data["config"]["batch_size"]

    @property
    def has_latencies(self) -> bool:
        """Whether the raw per-call latencies (for distributions) are loaded."""
        return all("samples" in self.data["variants"][v]["latency_ms"] for v in ("baseline", "branchy"))


def _with_latencies(path: Path, doc: dict, run: dict) -> tuple[dict, tuple]:
    """The run with its raw latencies from the side file (version 2 and 3), or without them and a note saying why."""
    if doc.get("version", doc.get("schema_version")) == 1:
        return run, ()
    from edgebranchy.artifact.latencies import load_latencies

    try:
        lat = load_latencies(path, run["id"], doc=doc)
    except EdgeBranchyError as e:
        return run, (f"{e}; latency distributions are left out",)
    variants = {}
    for name, v in run["variants"].items():
        samples = lat.get(name)
        variants[name] = v if samples is None else {**v, "latency_ms": {**v["latency_ms"],
                                                                         "samples": samples.tolist()}}
    return {**run, "variants": variants}, ()


def load_runs(paths: list[str | os.PathLike], boards: list[str] | None = None) -> list[Run]:
    """Load and validate every results file (all errors surface before any output is written); one Run per
    run of each file. `boards`: the board each file comes from (a fleet's names), for the labels."""
    if not paths:
        raise EdgeBranchyError("no results files given")
    loaded = []
    for i, p in enumerate(paths):
        path = Path(p)
        doc = load_results(path)
        for run in runs_of(doc):
            run, notes = _with_latencies(path, doc, run)
            if "created" not in run and "created" in doc:  # a v2 run: its file's stamp (labels' date and time)
                run = {**run, "created": doc["created"]}
            if boards:
                run = {**run, "board": boards[i]}
            loaded.append((path, run, notes))
    labels = run_labels([run for _, run, _ in loaded])
    return [Run(index=n, path=path, data=run, label=label, short_label=short, run_id=run.get("id", "r1"),
                notes=notes)
            for n, ((path, run, notes), (label, short)) in enumerate(zip(loaded, labels), start=1)]
