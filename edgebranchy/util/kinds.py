"""What kind of edgebranchy file a path is, from cheap signatures (no torch, no full parse).

Used to decide what `--force` may replace and to say what a wrong argument is.
Signatures:
  artifact   a directory whose manifest.json has schema "edgebranchy.artifact"
  report     a directory with report.md or report.html and the REPORT_MARKER file
  quickstart a directory with the QUICKSTART_MARKER file that `edgebranchy quickstart` writes first
  results    a JSON file with schema "edgebranchy.results", or "edgebranchy.streams" (bench --streams)
  trial-log  a .jsonl file whose first line is a bench "start" record
  checkpoint a torch zip file whose data.pkl holds the "edgebranchy.checkpoint" header
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Literal

Kind = Literal["checkpoint", "artifact", "results", "trial-log", "report", "quickstart", "other-file", "other-dir",
               "missing"]
KINDS: tuple[str, ...] = ("checkpoint", "artifact", "results", "trial-log", "report", "quickstart", "other-file",
                          "other-dir", "missing")

ARTIFACT_SCHEMA = "edgebranchy.artifact"
RESULTS_SCHEMA = "edgebranchy.results"
STREAMS_SCHEMA = "edgebranchy.streams"
CHECKPOINT_FORMAT = "edgebranchy.checkpoint"
REPORT_SCHEMA = "edgebranchy.report"
REPORT_MARKER = "edgebranchy-report.json"
QUICKSTART_SCHEMA = "edgebranchy.quickstart"
QUICKSTART_MARKER = "edgebranchy-quickstart.json"

_HEAD = 1 << 16  # bytes read to recognise a JSON document or a trial log's first line
_PICKLE_HEAD = 1 << 12  # the checkpoint header is the first key of the pickled dict


def _json_schema(path: Path, limit: int | None = None) -> str | None:
    """The top-level "schema" of a small JSON document (None when it is not one)."""
    try:
        with open(path, "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError:
        return None
    if limit is not None and len(data) > limit:
        # Large results files: the schema key comes first in what bench writes.
        head = data[:limit].decode("utf-8", "replace")
        return RESULTS_SCHEMA if f'"schema": "{RESULTS_SCHEMA}"' in head[:200] else None
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj.get("schema") if isinstance(obj, dict) and isinstance(obj.get("schema"), str) else None


def _is_checkpoint(path: Path) -> bool:
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1:
                return False
            with z.open(pkl[0]) as f:
                head = f.read(_PICKLE_HEAD)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return False
    return CHECKPOINT_FORMAT.encode() in head


def _is_trial_log(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            line = f.readline(_HEAD)
    except OSError:
        return False
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "start" and "environment" in obj and "config" in obj


def _is_report(path: Path) -> bool:
    if not ((path / "report.md").is_file() or (path / "report.html").is_file()):
        return False
    return _json_schema(path / REPORT_MARKER) == REPORT_SCHEMA


def what_is(path: str | os.PathLike) -> Kind:
    """The kind of `path`: one of KINDS. Never raises for unreadable or odd paths."""
    p = Path(path)
    try:
        if not p.exists():
            return "missing"
        if p.is_dir():
            if (p / "manifest.json").is_file() and _json_schema(p / "manifest.json") == ARTIFACT_SCHEMA:
                return "artifact"
            if _is_report(p):
                return "report"
            if _json_schema(p / QUICKSTART_MARKER) == QUICKSTART_SCHEMA:
                return "quickstart"
            return "other-dir"
        if not p.is_file():
            return "other-file"
        if p.name.endswith(".jsonl"):
            return "trial-log" if _is_trial_log(p) else "other-file"
        if _is_checkpoint(p):
            return "checkpoint"
        if _json_schema(p, limit=64 << 20) in (RESULTS_SCHEMA, STREAMS_SCHEMA):
            return "results"
    except OSError:
        return "other-file"
    return "other-file"


def describe(kind: str) -> str:
    """A kind in words, for messages: 'an edgebranchy artifact', 'a folder', ..."""
    return {"checkpoint": "an edgebranchy checkpoint", "artifact": "an edgebranchy artifact",
            "results": "an edgebranchy results file", "trial-log": "a bench trial log",
            "report": "an edgebranchy report",
            "quickstart": "the output folder of an earlier `edgebranchy quickstart`", "other-file": "a file that edgebranchy did not write",
            "other-dir": "a folder that is not an edgebranchy artifact or report",
            "missing": "nothing (it does not exist)"}[kind]
