"""what_is: the kind of a path from cheap signatures."""
from __future__ import annotations

import json
import shutil

from edgebranchy.util.kinds import REPORT_MARKER, what_is


def test_missing_and_plain(tmp_path):
    assert what_is(tmp_path / "nope") == "missing"
    assert what_is(tmp_path) == "other-dir"
    (tmp_path / "a.txt").write_text("hello")
    assert what_is(tmp_path / "a.txt") == "other-file"
    (tmp_path / "b.json").write_text(json.dumps({"schema": "something.else"}))
    assert what_is(tmp_path / "b.json") == "other-file"
    (tmp_path / "c.json").write_text("{not json")
    assert what_is(tmp_path / "c.json") == "other-file"


def test_checkpoint(tiny_checkpoint, tmp_path):
    assert what_is(tiny_checkpoint) == "checkpoint"
    # a torch file that is not an edgebranchy checkpoint
    import torch

    torch.save({"format": "other", "x": torch.zeros(2)}, tmp_path / "other.pt")
    assert what_is(tmp_path / "other.pt") == "other-file"
    # a zip that is not a torch file
    shutil.make_archive(str(tmp_path / "z"), "zip", tmp_path, "other.pt")
    assert what_is(tmp_path / "z.zip") == "other-file"


def test_artifact(tiny_artifact, tmp_path):
    assert what_is(tiny_artifact) == "artifact"
    assert what_is(tiny_artifact / "manifest.json") == "other-file"
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"schema": "edgebranchy.results"}))
    assert what_is(fake) == "other-dir"


def test_results_and_trial_log(tmp_path):
    r = tmp_path / "results.json"
    r.write_text(json.dumps({"schema": "edgebranchy.results", "schema_version": 1}))
    assert what_is(r) == "results"
    log = tmp_path / "results.json.jsonl"
    log.write_text(json.dumps({"type": "start", "environment": {}, "config": {}}) + "\n"
                   + json.dumps({"type": "idle"}) + "\n")
    assert what_is(log) == "trial-log"
    (tmp_path / "x.jsonl").write_text(json.dumps({"type": "trial"}) + "\n")
    assert what_is(tmp_path / "x.jsonl") == "other-file"


def test_report(tmp_path):
    d = tmp_path / "rep"
    d.mkdir()
    (d / "report.md").write_text("# hi")
    assert what_is(d) == "other-dir"  # no marker: a folder someone else wrote
    (d / REPORT_MARKER).write_text(json.dumps({"schema": "edgebranchy.report", "schema_version": 1}))
    assert what_is(d) == "report"
