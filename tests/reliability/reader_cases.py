"""One case per file kind of `edgebranchy.util.readers.FILE_KINDS`: how to write a valid file of that kind and
how the package reads it (through the CLI where that is cheap, else the reader function the command calls).

`CASES[kind].read(world, path)` returns normally when the file is accepted and raises EdgeBranchyError when
it is refused; anything else (a traceback, a hang) is a defect. `fmt` says which mutations apply.
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from rel_util import cli, one_error_line


@dataclass
class Case:
    fmt: str                                   # json | jsonl | toml | zip | npz | bytes | gzip | tar
    make: Callable[[object, Path], Path]       # (world, folder) -> a valid file of the kind, inside folder
    read: Callable[[object, Path], object]     # (world, path) -> accepted, or EdgeBranchyError


def via_cli(*argv) -> None:
    """A command on the file: exit 0 (or compare's 1) is acceptance; exit 2 with one line is refusal."""
    rc, _, err = cli(*argv)
    if rc == 2:
        raise EdgeBranchyError(one_error_line(err))
    assert rc in (0, 1), (argv, rc, err)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


# ------------------------------------------------------------------ makers


def _manifest(w, d):
    shutil.copytree(w.art, d / "art")
    return d / "art" / "manifest.json"


def _segment(w, d):
    shutil.copytree(w.art, d / "art")
    return d / "art" / json.loads((w.art / "manifest.json").read_text())["segments"][0]["file"]


def _results(w, d):
    return _copy(w.results, d / "r.json")


def _latencies(w, d):
    _copy(w.results, d / "r.json")
    return _copy(w.latencies, d / "r.json.latencies.npz")


def _npz(w, d):
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(24, dtype=np.uint8).reshape(2, 3, 4), y=np.arange(2, dtype=np.int64))
    (d / "datasets").mkdir()
    p = d / "datasets" / "k.npz"
    p.write_bytes(buf.getvalue())
    return p


def _idx(w, d):
    import gzip
    import struct

    arr = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)
    p = d / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(struct.pack(">HBB3I", 0, 8, 3, *arr.shape) + arr.tobytes()))
    return p


def _cifar(w, d):
    import pickle

    p = d / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2))
    return p


def _image(w, d):
    from PIL import Image

    p = d / "a.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(p)
    return p


def _profile(w, d):
    from eb_testutil import ROOT

    return _copy(ROOT / "profiles" / "x86-cpu.toml", d / "p.toml")


def _inventory(w, d):
    p = d / "boards.toml"
    p.write_text('[defaults]\nprofile = "x86-cpu"\n\n[[board]]\nhost = "pi@10.0.0.5"\nname = "pi"\n\n'
                 '[[board]]\nhost = "nano"\nworkdir = "/tmp/eb"\n')
    return p


def _status(w, d):
    b = d / "boards" / "b1"
    b.mkdir(parents=True)
    shutil.copy(w.results, b / "results.json")
    (b / "status.json").write_text(json.dumps({"status": "ok", "run": "x", "facts": {"machine": "x86_64"}}))
    return b / "status.json"


def _tar(w, d):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in (("results.json", b"{}"), ("doctor.json", b"[]")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    from edgebranchy.remote.scripts import TAR_MARK

    p = d / "board.tar"
    p.write_bytes(TAR_MARK + buf.getvalue())  # what the board's fetch prints: its mark, then the tar
    return p


def _checkpoint(w, d):
    return _copy(w.checkpoint, d / "m.pt")


def _resume(w, d):
    return _copy(w.resume, d / "m.pt.resume")


def _engine_description(w, d):
    p = d / "engine.json"
    p.write_text(json.dumps({"segments": ["seg0.plan"], "tensorrt": "10.3.0", "precision": "fp16"}))
    return p


def _blob(name):
    def make(w, d):
        p = d / name
        p.write_bytes(bytes(range(256)) * 8)
        return p
    return make


def _wheel(w, d):
    p = d / "edgebranchy-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("edgebranchy/__init__.py", "x = 1\n" * 50)
        z.writestr("edgebranchy-0.1.0.dist-info/METADATA", "Name: edgebranchy\nVersion: 0.1.0\n")
    return p


def _power_log(w, d):
    p = d / "usb.csv"
    p.write_text("Time [s],Power [mW]\n" + "".join(f"{0.02 * i:.2f},{1000 + i}\n" for i in range(50)))
    return p


# ------------------------------------------------------------------ readers


def _read_latencies(w, p):
    from edgebranchy.artifact.latencies import load_latencies
    from edgebranchy.util.files import sha256_bytes

    doc = json.loads(w.results.read_text())
    if p.is_file() and not p.is_symlink():  # the side file as the results file records it
        doc["latencies_sha256"] = sha256_bytes(p.read_bytes())
    return load_latencies(p.with_name("r.json"), "r1", doc=doc)


def _read_cache(w, p):
    import os

    from edgebranchy.data import cache

    old = os.environ.get("EDGEBRANCHY_CACHE")
    os.environ["EDGEBRANCHY_CACHE"] = str(p.parent.parent)
    try:
        got = cache.load("k", ("x", "y"))
    finally:
        os.environ.pop("EDGEBRANCHY_CACHE") if old is None else os.environ.__setitem__("EDGEBRANCHY_CACHE", old)
    if got is None:
        raise EdgeBranchyError("cache entry ignored (rebuilt by the caller)")
    return got


def _read_image(w, p):
    from edgebranchy.data.imagefolder import BadImage, ImageSpec, check_image, load_image

    why = check_image(p)
    if why:
        raise EdgeBranchyError(why)
    try:
        return load_image(p, ImageSpec(8, (8, 8), "RGB"))
    except BadImage as e:
        raise EdgeBranchyError(str(e)) from None


def _read_status(w, p):
    from edgebranchy.remote.fleet import kept_results
    from edgebranchy.remote.targets import Board

    if not kept_results([Board("b1", "host")], p.parent.parent.parent):
        raise EdgeBranchyError("board status not used")


def _read_tar(w, p):
    """A board's answer that is refused fails that board alone (_StepFailed, in its status.json): a refusal."""
    from edgebranchy.remote.job import _read_tar as read, _StepFailed

    try:
        return read(p.read_bytes() if p.is_file() else b"")
    except _StepFailed as e:
        raise EdgeBranchyError(str(e)) from None


def _read_resume(w, p):
    t = w.trainer
    t.resume_path = p
    return t._load_resume()


def _read_sniffed(w, p):
    from edgebranchy.util.kinds import KINDS, what_is

    assert what_is(p) in KINDS


def _read_data_file(w, p):
    from edgebranchy.data.cache import files_digest

    if files_digest([p]) is None:
        raise EdgeBranchyError("data file not readable")


def _reader(module, name, kind=None):
    def read(w, p):
        import importlib

        f = getattr(importlib.import_module(module), name)
        return f(p) if kind is None else f(p, kind)
    return read


def _plan(w, d):
    doc = {"schema": "edgebranchy.plan", "schema_version": 1, "backbone": "b-alexnet", "backbone_args": {},
           "split_points": ["3", "9"], "head": "conv", "head_shapes": [[32, 14, 14], [96, 7, 7]],
           "input_shape": [1, 28, 28], "num_classes": 10}
    p = d / "p.plan.json"
    p.write_text(json.dumps(doc))
    return p


def _plan_cache(w, d):
    p = d / "features-val.npy"
    np.save(p, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    return p


CASES = {
    "manifest": Case("json", _manifest, lambda w, p: via_cli("predict", p.parent, "--dataset", "synthetic",
                                                             "--samples", "4")),
    "artifact-file": Case("bytes", _segment, lambda w, p: via_cli("predict", p.parent.parent, "--dataset",
                                                                  "synthetic", "--samples", "4")),
    "results": Case("json", _results, lambda w, p: via_cli("compare", p, p)),
    "trial-log": Case("jsonl", lambda w, d: _copy(w.trial_log, d / "r.json.jsonl"),
                      _reader("edgebranchy.bench.trial_log", "read_log")),
    "latencies": Case("npz", _latencies, _read_latencies),
    "data-cache": Case("npz", _npz, _read_cache),
    "idx": Case("gzip", _idx, _reader("edgebranchy.data.idx", "read_idx")),
    "cifar": Case("bytes", _cifar, _reader("edgebranchy.data.cifar", "read_batch")),
    "image": Case("bytes", _image, _read_image),
    "profile": Case("toml", _profile, lambda w, p: via_cli("profiles", p)),
    "inventory": Case("toml", _inventory, _reader("edgebranchy.remote.targets", "load_inventory")),
    "board-status": Case("json", _status, _read_status),
    "board-tar": Case("tar", _tar, _read_tar),
    "checkpoint": Case("zip", _checkpoint, _reader("edgebranchy.models.checkpoint", "load_checkpoint")),
    "resume-state": Case("zip", _resume, _read_resume),
    "engine-description": Case("json", _engine_description,
                               _reader("edgebranchy.util.readers", "load_json", "engine-description")),
    "engine": Case("bytes", _blob("seg0.plan"), _reader("edgebranchy.util.readers", "read_bytes", "engine")),
    "timing-cache": Case("bytes", _blob("timing.cache"),
                         _reader("edgebranchy.util.readers", "read_bytes", "timing-cache")),
    "wheel": Case("zip", _wheel, _reader("edgebranchy.remote.bundle", "wheel_part")),
    "power-log": Case("bytes", _power_log, _reader("edgebranchy.measure.external", "parse_meter_csv")),
    "sniffed": Case("json", _results, _read_sniffed),
    "data-file": Case("bytes", _blob("train-labels-idx1-ubyte"), _read_data_file),
    "plan": Case("json", _plan, _reader("edgebranchy.plan.file", "read_plan")),
    "plan-cache": Case("bytes", _plan_cache, _reader("edgebranchy.util.readers", "load_npy", "plan-cache")),
}
