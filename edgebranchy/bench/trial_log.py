"""The trial log of one `bench`: its records, written as they happen and read back by `--resume`.

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

LOG_VERSION = 2


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


def _schemas() -> dict:
    """The declared schema of each record type (`read_log` checks every record before any use)."""
    from edgebranchy.util.schema import Anything, Int, List, Nullable, Num, Obj, Str

    reading = Obj({"joules": Num(), "seconds": Num(0), "watts": Num(), "samples": Int(0), "source": Str(),
                   "kind": Str(("measured", "estimated"))},
                  {"provenance": Nullable(Obj()), "flag": Nullable(Str())}, closed=True)
    run = {"type": Str(), "run": Str(max_len=200)}
    window = Obj({"start_unix": Num(), "end_unix": Num()})
    conditions = Obj({"throttled": Anything(), "reasons": List(Str())})
    return {
        "start": Obj({"type": Str(), "version": Int(), "config": Obj(), "plan": List(), "environment": Obj()},
                     {"artifact_sha256": Anything()}),
        "run-start": Obj({**run, "environment": Obj({"conditions_start": Nullable(Obj())},
                                                    {"batch1_form": Nullable(Str())})}),
        "idle": Obj({**run, "reading": reading}),
        "trial": Obj({**run, "trial": Int(0), "variant": Str(("baseline", "branchy")), "passes": Int(0),
                      "inferences": Int(0), "latency_ms": List(Num(0), 1), "energy": reading,
                      "window": window, "conditions": conditions},
                     {"energy_per_inference_mj": Nullable(Num()), "dynamic_per_inference_mj": Nullable(Num()),
                      "external_energy": Nullable(Obj())}),
        "run": Obj({**run, "result": Obj({"variants": Obj()})}),
        "done": Obj({"type": Str()}),
    }


def _records(path: Path) -> list:
    """Every record of the log, each checked against its type's schema; a last line cut short is dropped."""
    from edgebranchy.util.readers import decode_text, parse_json, read_bytes
    from edgebranchy.util.schema import check

    try:
        data = read_bytes(path, "trial-log")
    except EdgeBranchyError as e:
        if not Path(path).exists():
            raise EdgeBranchyError(f"no trial log at {path} to resume: run bench without `resume`") from None
        raise EdgeBranchyError(f"{e}; it cannot be resumed (run again with `force`)") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    schemas, recs = _schemas(), []
    for i, raw in enumerate(lines):
        where = f"trial log {path} line {i + 1}"
        last = i == len(lines) - 1 and not data.endswith(b"\n")
        try:
            rec = parse_json(decode_text(raw, where), where, "trial-log")
        except EdgeBranchyError as e:
            if last:
                break  # the write the kill interrupted
            raise EdgeBranchyError(f"{e}; it cannot be resumed (run again with `force`)") from None
        kind = rec.get("type") if isinstance(rec, dict) else None
        if not isinstance(kind, str) or kind not in schemas:
            raise EdgeBranchyError(f"{where}: not a trial log record (type {str(kind)[:40]!r}); it cannot be "
                                   "resumed (run again with `force`)")
        if (kind == "start") != (i == 0):
            raise EdgeBranchyError(f"{where}: a start record only opens a trial log; it cannot be resumed "
                                   "(run again with `force`)")
        check(rec, schemas[kind], f"{where} ({kind} record; run again with `force`)")
        if kind == "run":
            from edgebranchy.artifact.results import validate_run

            validate_run(rec["result"], f"{where} (run record; run again with `force`)")
        recs.append(rec)
    return recs


def read_log(path: Path) -> LogState:
    """The records of a trial log, each checked; a last line cut short by a kill is ignored."""
    recs = _records(path)
    if not recs or recs[0].get("type") != "start":
        raise EdgeBranchyError(f"{path} is not a bench trial log (no start record); run again with `force`")
    head = recs[0]
    if head.get("version") != LOG_VERSION:
        raise EdgeBranchyError(f"{path} was written by an older bench that cannot be resumed; run again with "
                               "`force`")
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
                               "original command with `resume`, or pass `force` to start again")


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
        if self.append:  # resumed: a line cut short by the kill is dropped first
            text = self.path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                self.path.write_text(text[:text.rfind("\n") + 1], encoding="utf-8")
            self.f = open(self.path, "a", encoding="utf-8")
            return
        try:  # "x": never truncate a log that appeared since check_outputs
            self.f = open(self.path, "w" if self.replace else "x", encoding="utf-8")
        except FileExistsError:
            raise EdgeBranchyError(f"{self.path} appeared while the bench started; choose a new `out`") from None

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
