"""When a command is given the wrong kind of edgebranchy file: say what it is and what to run instead.

`refuse_wrong_kind(path, wanted, command)` is called at the top of a command's run(): when
`util.kinds.what_is` recognises `path` as another edgebranchy kind (a checkpoint, an artifact, a
results file, a trial log, a report, a quickstart folder), it raises one EdgeBranchyError line such as
"runs/model.pt is a checkpoint, not an artifact: export it first: edgebranchy export runs/model.pt --out
runs/model-artifact". A missing path, or one edgebranchy did not write, is left to the command's own
loader (it says what exactly is wrong with it). Standard library only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.kinds import describe, what_is

#: what a command can want, in words
_WANTED = {"checkpoint": "a checkpoint", "artifact": "an artifact", "results": "a results file",
           "trial-log": "a trial log", "report": "a report"}
#: what a found kind is, short
_IS = {"checkpoint": "a checkpoint", "artifact": "an artifact",
       "results": "a results file (from edgebranchy bench)",
       "trial-log": "the trial log of a bench that did not finish",
       "report": "a report folder (from edgebranchy report)",
       "quickstart": "a quickstart output folder"}


def _sibling(path: Path, suffix: str) -> str:
    """runs/model.pt -> runs/model-artifact (for a suggested output next to the input)."""
    stem = path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.stem
    if stem.endswith(".json"):
        stem = stem[:-len(".json")]
    return str(path.with_name(f"{stem}{suffix}"))


def _trial_log_artifact(path: Path) -> str:
    """The artifact a trial log was measured on, if its start record names it (else ARTIFACT_DIR)."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.readers import open_regular

    try:
        with open_regular(path, "sniffed") as f:
            start = json.loads(f.readline(1 << 20).decode("utf-8"))
        for part in ("config", "environment"):
            a = (start.get(part) or {}).get("artifact")
            if isinstance(a, str) and a:
                return a
    except (OSError, ValueError, AttributeError, RecursionError, EdgeBranchyError):
        pass
    return "ARTIFACT_DIR"


def _instead(found: str, wanted: tuple, command: str, path: Path) -> str:
    """What to run instead, for `found` given to `command` that wants one of `wanted`."""
    p = str(path)
    if found == "checkpoint":
        if "artifact" in wanted:
            return f"export it first: edgebranchy export {p} --out {_sibling(path, '-artifact')}"
        return (f"export it (edgebranchy export {p} --out ARTIFACT_DIR), bench the artifact (edgebranchy bench "
                f"ARTIFACT_DIR --out RESULTS.json), then edgebranchy {command} RESULTS.json")
    if found == "artifact":
        if command == "export":
            return (f"it is already exported: to build TensorRT engines into it run edgebranchy build {p}; "
                    "to re-export, give the checkpoint it came from")
        if "results" in wanted:
            return f"bench it first: edgebranchy bench {p} --out {_sibling(path, '-results.json')}"
        return f"give the checkpoint it was exported from, or run it: edgebranchy predict {p}"
    if found == "results":
        if command == "calibrate":
            return f"to use its measured costs: edgebranchy calibrate CHECKPOINT.pt --cost {p} --out NEW.pt"
        return (f"{command} takes the artifact that bench measured; to read these results: edgebranchy report "
                f"{p} --out {_sibling(path, '-report')}")
    if found == "trial-log":
        results = p[:-len(".jsonl")] if p.endswith(".jsonl") else "RESULTS.json"
        return (f"unfinished bench: finish it with edgebranchy bench {_trial_log_artifact(path)} --out {results} "
                f"--resume, then edgebranchy report {results}")
    if found == "report":
        return f"open {path / 'report.html'}; give {command} the results files the report was made from"
    if found == "quickstart":
        inside = {"checkpoint": "b-lenet.pt", "artifact": "artifact", "results": "results.json"}
        for w in wanted:
            if w in inside:
                return f"its {w} is {path / inside[w]}"
        return "it holds b-lenet.pt, artifact/, results.json and report/"
    return ""


def wrong_kind_message(path: "str | os.PathLike", wanted: str, command: str) -> Optional[str]:
    """The one-line message for `path` given to `command` that wants `wanted` ("artifact", or several:
    "checkpoint|artifact"), or None when `path` is one of those, is missing, or is no edgebranchy file."""
    kinds = tuple(w.strip() for w in wanted.replace(",", "|").split("|") if w.strip())
    unknown = [w for w in kinds if w not in _WANTED]
    if unknown or not kinds:
        raise ValueError(f"unknown wanted kind(s) {unknown or wanted!r}")
    p = Path(path)
    found = what_is(p)
    if found in kinds or found in ("missing", "other-dir"):
        return None
    if found == "other-file":
        if kinds == ("artifact",):
            return (f"{p} is a file, not an artifact directory: an artifact is the folder that edgebranchy export "
                    f"writes (edgebranchy export CHECKPOINT.pt --out DIR)")
        return None  # a damaged checkpoint or results file: the loader names what is wrong
    want = " or ".join(_WANTED[w] for w in kinds)
    is_ = _IS.get(found, describe(found))
    hint = _instead(found, kinds, command, p)
    return f"{p} is {is_}, not {want}" + (f": {hint}" if hint else "")


def refuse_wrong_kind(path: "str | os.PathLike", wanted: str, command: str) -> None:
    """Raise EdgeBranchyError (one line: what `path` is, what to run instead) when `path` is another kind
    of edgebranchy file than `command` wants; return quietly otherwise (see wrong_kind_message)."""
    msg = wrong_kind_message(path, wanted, command)
    if msg:
        raise EdgeBranchyError(msg)
