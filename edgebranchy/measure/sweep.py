"""The runs of one `bench` (a sweep over batch sizes, backends and batch-1 forms) and its trial log's records.

The trial log OUT.jsonl starts with a "start" record of the whole bench (config, artifact sha256, the
plan of runs); each run then writes "run-start" (its environment and config), "idle", one "trial" record
per finished trial and "run" (the assembled run, raw latencies included); "done" ends a finished bench.
`--resume` reads it back (`read_log`), checks it was started by the same bench (`check_resumable`) and
measures only what is missing.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.vocab import FORMS
LOG_VERSION = 2


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id and the combination it measures."""

    id: str
    batch_size: int
    backend: str
    form: str  # auto | segments | single-graph (batch 1); segments at larger batches

    def to_dict(self) -> dict:
        return {"id": self.id, "batch_size": self.batch_size, "backend": self.backend, "form": self.form}

    def describe(self) -> str:
        return f"batch {self.batch_size} · {self.backend} · {self.form}"


def as_list(value) -> list:
    """A single value or a sequence of them, as a list (duplicates dropped, order kept)."""
    items = [value] if isinstance(value, (str, int)) else list(value)
    out = []
    for v in items:
        if v not in out:
            out.append(v)
    return out


def plan_runs(batch_sizes, backends, forms, single_graph: bool = True) -> tuple[list[RunSpec], list[str]]:
    """Every combination, in order (batch size, then backend, then form), and a line per combination skipped:
    the batch-1 forms apply only at batch 1 (larger batches always run per segment), and an artifact without
    a single graph cannot run form single-graph."""
    forms = as_list(forms)
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise EdgeBranchyError(f"--form {bad[0]!r} is not a form; choose from {', '.join(FORMS)} (comma list)")
    specs, skipped = [], []
    for bs in as_list(batch_sizes):
        for backend in as_list(backends):
            if bs == 1:
                todo = []
                for f in forms:
                    if f == "single-graph" and not single_graph:
                        skipped.append(f"batch 1 · {backend} · single-graph skipped: the artifact has no single "
                                       "graph (exported with --no-single-graph)")
                    else:
                        todo.append(f)
            else:
                todo = ["segments"]
                for f in forms:
                    if f == "single-graph":
                        skipped.append(f"batch {bs} · {backend} · single-graph skipped: the single graph answers "
                                       "batch 1 only (batches run per segment)")
            for f in todo:
                specs.append(RunSpec(f"r{len(specs) + 1}", bs, backend, f))
    return specs, skipped


@dataclass
class RunLog:
    """What the trial log holds of one run."""

    start: dict | None = None
    idle: dict | None = None
    trials: list[dict] = field(default_factory=list)
    result: dict | None = None


@dataclass
class LogState:
    head: dict
    runs: dict[str, RunLog]
    done: bool


def read_log(path: Path) -> LogState:
    """The records of a trial log; a last line cut short by a kill is ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EdgeBranchyError(f"no trial log at {path} to resume: run bench without --resume") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeBranchyError(f"cannot read the trial log {path}: {e}") from None
    recs = []
    for i, line in enumerate(lines):
        try:
            recs.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break  # the write the kill interrupted
            raise EdgeBranchyError(f"trial log {path} line {i + 1} is not JSON; it cannot be resumed "
                                   "(run again with --force)") from None
    if not recs or recs[0].get("type") != "start":
        raise EdgeBranchyError(f"{path} is not a bench trial log (no start record); run again with --force")
    head = recs[0]
    if head.get("version") != LOG_VERSION or "plan" not in head:
        raise EdgeBranchyError(f"{path} was written by an older bench that cannot be resumed; run again with "
                               "--force")
    runs: dict[str, RunLog] = {}
    done = False
    for r in recs[1:]:
        kind, rid = r.get("type"), r.get("run")
        if kind == "done":
            done = True
            continue
        log = runs.setdefault(rid, RunLog())
        if kind == "run-start":
            log.start = r
        elif kind == "idle":
            log.idle = r["reading"]
        elif kind == "trial":
            log.trials.append(r)
        elif kind == "run":
            log.result = r["result"]
    return LogState(head, runs, done)


def _differences(old, new, where: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))
        return out
    return [] if old == new else [f"{where}: {json.dumps(old)} in the log, {json.dumps(new)} now"]


def check_resumable(head: dict, want: dict, path: Path) -> None:
    """The log's start record must describe this bench: same config, same artifact (sha256), same plan."""
    diffs = (_differences(head.get("config"), want["config"], "config")
             + _differences(head.get("artifact_sha256"), want["artifact_sha256"], "artifact sha256")
             + _differences(head.get("plan"), want["plan"], "runs"))
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise EdgeBranchyError(f"cannot resume {path}: it was started by a different bench ({shown}); repeat the "
                               "original command with --resume, or pass --force to start again")


class TrialLog:
    """JSON lines, one flushed and fsynced line per finished trial; `first` (the bench's start record) is
    written when the file is created (`open`, or the first write). `trials` counts the trial records written,
    so a bench refused while it sets up can remove a log that holds nothing to resume."""

    def __init__(self, path: Path, replace: bool = False, append: bool = False, first: dict | None = None):
        self.path, self.replace, self.append, self.first = path, replace, append, first
        self.f = None
        self.trials = 0  # trial records written by this bench

    def open(self) -> None:
        """Create (or open for appending) the log now and write the first record."""
        from edgebranchy.util.files import writing

        if self.f is None:
            with writing(self.path):
                self._open()
                if self.first is not None:
                    self._line(self.first)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.append:  # --resume: a line cut short by the kill is dropped first
            text = self.path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                self.path.write_text(text[:text.rfind("\n") + 1], encoding="utf-8")
            self.f = open(self.path, "a", encoding="utf-8")
            return
        try:  # "x": never truncate a log that appeared since check_outputs
            self.f = open(self.path, "w" if self.replace else "x", encoding="utf-8")
        except FileExistsError:
            raise EdgeBranchyError(f"{self.path} appeared while the bench started; choose a new --out") from None

    def write(self, obj: dict) -> None:
        from edgebranchy.util.files import writing

        self.open()
        with writing(self.path):
            self._line(obj)
        self.trials += obj.get("type") == "trial"

    def _line(self, obj: dict) -> None:
        self.f.write(json.dumps(obj, allow_nan=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
