"""What kind of edgebranchy file a path is, from cheap signatures (no torch, no full parse).

Used to decide what `--force` may replace and to say what a wrong argument is.
Signatures:
  artifact   a directory whose manifest.json has schema "edgebranchy.artifact"
  report     a directory with report.md or report.html and the REPORT_MARKER file
  quickstart a directory with the QUICKSTART_MARKER file that `edgebranchy quickstart` writes first
  results    a JSON file with schema "edgebranchy.results", or "edgebranchy.streams" (bench --streams)
  plan       a JSON file with schema "edgebranchy.plan" (`edgebranchy plan`)
  trial-log  a .jsonl file whose first line is a bench "start" record
  checkpoint a torch zip file whose data.pkl holds the "edgebranchy.checkpoint" header
  predictions  a `predict --out` file: JSON with schema "edgebranchy.predictions" (or the artifact, backend,
             thresholds and predictions fields of older ones), or a CSV whose first line is its header
  doctor     a JSON file with schema "edgebranchy.doctor" or "edgebranchy.doctor-artifact" (`doctor --out`)
  fleet      a directory whose status.json is a `remote` run's (schema "edgebranchy.fleet", or the fields
             run, artifact, wheel and boards that status files had before it), or that holds only boards/
             (and report/): a first `remote` run interrupted before its status.json
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Literal

Kind = Literal["checkpoint", "artifact", "results", "plan", "trial-log", "report", "quickstart", "doctor", "fleet",
               "predictions", "other-file", "other-dir", "missing"]
KINDS: tuple[str, ...] = ("checkpoint", "artifact", "results", "plan", "trial-log", "report", "quickstart", "doctor",
                          "fleet", "predictions", "other-file", "other-dir", "missing")

ARTIFACT_SCHEMA = "edgebranchy.artifact"
RESULTS_SCHEMA = "edgebranchy.results"
PLAN_SCHEMA = "edgebranchy.plan"
STREAMS_SCHEMA = "edgebranchy.streams"
CHECKPOINT_FORMAT = "edgebranchy.checkpoint"
REPORT_SCHEMA = "edgebranchy.report"
REPORT_MARKER = "edgebranchy-report.json"
QUICKSTART_SCHEMA = "edgebranchy.quickstart"
QUICKSTART_MARKER = "edgebranchy-quickstart.json"
DOCTOR_SCHEMAS = ("edgebranchy.doctor", "edgebranchy.doctor-artifact")
FLEET_SCHEMA = "edgebranchy.fleet"
PREDICTIONS_SCHEMA = "edgebranchy.predictions"
PREDICTIONS_CSV_HEADER = "file,label,class_index,exit,entropy"
FLEET_STATUS = "status.json"
_FLEET_FIELDS = ("run", "artifact", "wheel", "boards")

_HEAD = 1 << 16  # bytes read to recognise a JSON document or a trial log's first line
_JSON_MAX = 16 << 20  # a manifest, marker or status file larger than this is not one edgebranchy wrote
_PICKLE_HEAD = 1 << 12  # the checkpoint header is the first key of the pickled dict


def _head(path: Path, limit: int) -> bytes | None:
    """Up to `limit` + 1 bytes of a regular file (None for a FIFO, a device, a folder or an unreadable file)."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.readers import open_regular

    try:
        with open_regular(path, "sniffed") as f:
            return f.read(limit + 1)
    except (EdgeBranchyError, OSError):
        return None


def _json_schema(path: Path, limit: int = _JSON_MAX) -> str | None:
    """The top-level "schema" of a small JSON document (None when it is not one)."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.readers import parse_json

    data = _head(path, limit)
    if data is None:
        return None
    if len(data) > limit:
        # Large results files: the schema key comes first in what bench writes.
        head = data[:limit].decode("utf-8", "replace")
        return RESULTS_SCHEMA if f'"schema": "{RESULTS_SCHEMA}"' in head[:200] else None
    try:
        obj = parse_json(data.decode("utf-8"), str(path), "sniffed")
    except (UnicodeDecodeError, EdgeBranchyError):
        return None
    return obj.get("schema") if isinstance(obj, dict) and isinstance(obj.get("schema"), str) else None


def _is_checkpoint(path: Path) -> bool:
    import zlib

    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.readers import open_regular

    try:
        with open_regular(path, "sniffed") as raw:
            if not zipfile.is_zipfile(raw):
                return False
            with zipfile.ZipFile(raw) as z:
                pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if len(pkl) != 1:
                    return False
                with z.open(pkl[0]) as f:
                    head = f.read(_PICKLE_HEAD)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError, zlib.error, EdgeBranchyError):
        return False
    return CHECKPOINT_FORMAT.encode() in head


def _is_trial_log(path: Path) -> bool:
    data = _head(path, _HEAD)
    line = (data or b"").split(b"\n", 1)[0]
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "start" and "environment" in obj and "config" in obj


def _json_object(path: Path, limit: int = _HEAD) -> dict | None:
    """A small regular JSON file's top-level object (None when it is not one)."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.readers import parse_json

    data = _head(path, limit)
    if data is None or len(data) > limit:
        return None
    try:
        obj = parse_json(data.decode("utf-8"), str(path), "sniffed")
    except (UnicodeDecodeError, EdgeBranchyError):
        return None
    return obj if isinstance(obj, dict) else None


def _first_line(path: Path) -> str:
    return (_head(path, _HEAD) or b"").split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")


def _is_old_predictions(path: Path) -> bool:
    obj = _json_object(path, limit=64 << 20)
    return obj is not None and isinstance(obj.get("predictions"), list) and "artifact" in obj and "backend" in obj


def _is_fleet(path: Path) -> bool:
    obj = _json_object(path / FLEET_STATUS, limit=16 << 20)
    if obj is None:  # a first run interrupted before its status.json: its boards/ and nothing else
        return (path / "boards").is_dir() and {p.name for p in path.iterdir()} <= {"boards", "report", FLEET_STATUS}
    return obj.get("schema") == FLEET_SCHEMA or (obj.get("schema") is None and all(k in obj for k in _FLEET_FIELDS)
                                                 and isinstance(obj.get("boards"), list))


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
            if _is_fleet(p):
                return "fleet"
            return "other-dir"
        if not p.is_file():
            return "other-file"
        if p.name.endswith(".jsonl"):
            return "trial-log" if _is_trial_log(p) else "other-file"
        if p.name.lower().endswith(".csv"):
            return "predictions" if _first_line(p) == PREDICTIONS_CSV_HEADER else "other-file"
        if _is_checkpoint(p):
            return "checkpoint"
        schema = _json_schema(p, limit=64 << 20)
        if schema in (RESULTS_SCHEMA, STREAMS_SCHEMA):
            return "results"
        if schema == PLAN_SCHEMA:
            return "plan"
        if schema in DOCTOR_SCHEMAS:
            return "doctor"
        if schema == PREDICTIONS_SCHEMA or (schema is None and _is_old_predictions(p)):
            return "predictions"
    except OSError:
        return "other-file"
    return "other-file"


def describe(kind: str) -> str:
    """A kind in words, for messages: 'an edgebranchy artifact', 'a folder', ..."""
    return {"checkpoint": "an edgebranchy checkpoint", "artifact": "an edgebranchy artifact",
            "results": "an edgebranchy results file", "plan": "an edgebranchy plan file", "trial-log": "a bench trial log",
            "report": "an edgebranchy report",
            "quickstart": "the output folder of an earlier `edgebranchy quickstart`",
            "doctor": "an edgebranchy doctor report", "predictions": "the answers of an earlier `edgebranchy predict`", "fleet": "the output folder of an earlier `edgebranchy remote`",
            "other-file": "a file that edgebranchy did not write",
            "other-dir": "a folder that is not an edgebranchy artifact or report",
            "missing": "nothing (it does not exist)"}[kind]
