"""The artifact directory: manifest.json + segment graphs, verified on load (no torch needed).

Loading checks the schema, refuses any listed path that leaves the directory,
and verifies the sha256 of every file the manifest lists. No pickle anywhere.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int
from edgebranchy.util.files import atomic_write_dir, atomic_write_json, sha256_bytes, sha256_file
from edgebranchy.artifact.manifest_fields import validate_single_graph, validate_manifest_fields
from edgebranchy.artifact.onnx_data import refuse_external_data
from edgebranchy.util.readers import load_json, read_bytes, sha256_regular
from edgebranchy.vocab import check_precision

SCHEMA = "edgebranchy.artifact"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def safe_relpath(root: Path, rel: str) -> Path:
    """`root / rel` after checking that `rel` is a plain relative path that stays inside `root`."""
    if not isinstance(rel, str) or not rel:
        raise EdgeBranchyError(f"{root / MANIFEST}: file entry {rel!r} is not a relative path")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel or ":" in p.parts[0]:
        raise EdgeBranchyError(f"{root / MANIFEST}: refusing path {rel!r}: it leaves the artifact directory")
    full = (root / Path(*p.parts))
    try:
        full.resolve().relative_to(root.resolve())
    except ValueError:
        raise EdgeBranchyError(f"{root / MANIFEST}: refusing path {rel!r}: it resolves outside the artifact "
                               "directory (symbolic link?)") from None
    return full


_REQUIRED = ("input", "classes", "exits", "segments", "baseline", "files", "entropy")


def segment_io_names(n_inputs: int, n_features: int, last: bool) -> tuple[list[str], list[str]]:
    """(input names, output names) of a segment graph.

    One tensor in is `x`, one passed on is `features`; a segment of a model split by
    from_model that takes or passes on several tensors names them `x.0, x.1, ...` and
    `features.0, features.1, ...` (the first is the split's main tensor). Then `logits`, `entropy`.
    """
    ins = ["x"] if n_inputs == 1 else [f"x.{i}" for i in range(n_inputs)]
    feats = [] if last else ["features"] if n_features == 1 else [f"features.{i}" for i in range(n_features)]
    return ins, feats + ["logits", "entropy"]


def _check_segment_io(segments: list, where: Path) -> None:
    """Recorded input/output names: segment 0 takes the image alone, segment k+1 what segment k passes on."""
    prev = None
    for k, e in enumerate(segments):
        ins, outs = e.get("inputs", ["x"]), e.get("outputs")
        if not isinstance(ins, list) or not ins or not all(isinstance(n, str) for n in ins) \
                or (outs is not None and (not isinstance(outs, list) or not all(isinstance(n, str) for n in outs))):
            raise EdgeBranchyError(f"{where}: segments[{k}] 'inputs'/'outputs' must be lists of names")
        if k == 0 and ins != ["x"]:
            raise EdgeBranchyError(f"{where}: segment 0 must take the image alone (input 'x'), not {ins}")
        if prev is not None and len(prev) != len(ins):
            raise EdgeBranchyError(f"{where}: segment {k - 1} passes on {len(prev)} tensor(s) but segment {k} "
                                   f"takes {len(ins)}")
        prev = None if outs is None else [n for n in outs if n.startswith("features")]


def validate_manifest(m: Any, where: Path, graphs: bool = True) -> None:
    """Check a manifest's schema, version and shape; every failure is an EdgeBranchyError naming `where`."""
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise EdgeBranchyError(f"{where}: not an edgebranchy artifact manifest")
    if not is_int(m.get("schema_version")) or m.get("schema_version") != SCHEMA_VERSION:
        raise EdgeBranchyError(f"{where}: schema version {m.get('schema_version')}; this edgebranchy "
                               f"reads version {SCHEMA_VERSION}: re-export the artifact")
    for key in _REQUIRED:
        if key not in m:
            raise EdgeBranchyError(f"{where}: missing key {key!r}")
    for key in ("segments", "exits"):
        if not isinstance(m[key], list):
            raise EdgeBranchyError(f"{where}: '{key}' must be a list, got {type(m[key]).__name__}")
    if len(m["segments"]) != len(m["exits"]) or len(m["exits"]) < 1:
        raise EdgeBranchyError(f"{where}: {len(m['segments'])} segments but {len(m['exits'])} exits")
    entries = [("baseline", m["baseline"])] + [(f"segments[{i}]", e) for i, e in enumerate(m["segments"])]
    for name, e in entries:
        if not isinstance(e, dict) or not (isinstance(e.get("file"), str) or (not graphs and e.get("file") is None)):
            raise EdgeBranchyError(f"{where}: {name} has no 'file'")
    if not isinstance(m["files"], dict) or not all(isinstance(e, dict) for e in m["exits"]):
        raise EdgeBranchyError(f"{where}: 'files' must map paths to hashes and 'exits' must be objects")
    validate_manifest_fields(str(where), m)
    _check_segment_io(m["segments"], where)
    validate_single_graph(m.get("single_graph"), len(m["exits"]), where)


def build_manifest(config: dict, plan: Sequence[int], *, normalized: bool, temperatures: Sequence[float],
                   source: dict, segments: list[dict] | None = None, baseline: dict | None = None,
                   files: dict | None = None, exit_macs: Sequence[int] | None = None,
                   precisions: Sequence[str] = ("fp32",), export: dict | None = None,
                   single_graph: dict | None = None, quantization: dict | None = None) -> dict:
    """The manifest for a checkpoint `config` whose artifact exits are the model exits `plan`.

    `segments`/`baseline`/`files` describe the exported graphs; without them (the torch
    backend running a checkpoint directly) each segment only records its model exit.
    Thresholds, validation accuracies and the calibration record come from `config`.
    `single_graph`: the entry of the batch-1 graph with the exits inside (its file in `files`).
    `quantization`: how the INT8 graphs were made (export/quantize.py), when the artifact has them.
    """
    cal = config.get("calibration") or None
    thresholds = (cal or {}).get("thresholds")
    val_acc = (config.get("validation") or {}).get("exit_accuracy") or [None] * (max(plan) + 1)
    n = len(plan)
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "model": config["model"],
        "input": {"name": "x", **config["input"]},
        "classes": config["classes"],
        "entropy": {"unit": "nats", "normalized": bool(normalized), "temperatures": list(temperatures)},
        "exits": [{"index": k, "model_exit": j,
                   "threshold": (float(thresholds[j]) if thresholds and k < n - 1 else None),
                   "macs": None if exit_macs is None else int(exit_macs[k]), "val_accuracy": val_acc[j]}
                  for k, j in enumerate(plan)],
        "pruned_exits": [j for j in range(plan[-1] + 1) if j not in plan],
        "segments": segments if segments is not None else [{"index": k, "model_exit": j, "file": None}
                                                           for k, j in enumerate(plan)],
        "baseline": baseline if baseline is not None else {"file": None},
        "calibration": cal,
        "precisions": list(precisions),
        "source": source,
        "files": files if files is not None else {},
        "export": export,
        "tensorrt": {},
        **({"single_graph": single_graph} if single_graph is not None else {}),
        **({"quantization": quantization} if quantization is not None else {}),
    }


def exit_label(k: int, model_exits: list | None = None) -> str:
    """Segment k's exit as the user knows it: `exit k`, or `exit k (model exit m)` where export fused side exits
    away and the model (calibrate, train) numbers it m (`model_exits`: per segment, as results record it)."""
    m = model_exits[k] if model_exits and k < len(model_exits) else k
    return f"exit {k}" if m == k else f"exit {k} (model exit {m})"


class Artifact:
    """A loaded, verified artifact."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest
        self._shape: tuple[int, ...] | None = None

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = True) -> "Artifact":
        """Read `path/manifest.json`, validate it and (with `verify`) every listed file's sha256."""
        root = Path(path)
        if not root.is_dir():
            raise EdgeBranchyError(f"artifact directory not found: {root} (create one with `edgebranchy export`)")
        return cls.from_manifest(root, load_json(root / MANIFEST, "manifest"), verify=verify)

    @classmethod
    def from_manifest(cls, root: Path, manifest: Any, verify: bool = True, graphs: bool = True) -> "Artifact":
        """Validate a manifest (as `load` does) and wrap it. With graphs=False (an in-memory manifest
        built from a checkpoint for the torch backend) segments and the baseline need no file."""
        validate_manifest(manifest, root / MANIFEST, graphs=graphs)
        art = cls(root, manifest)
        for rel in manifest["files"]:
            safe_relpath(root, rel)
        for rel in art._referenced_files():
            if rel not in manifest["files"]:
                raise EdgeBranchyError(f"{root / MANIFEST}: {rel} is used but has no hash in 'files'")
        if verify:
            art.verify()
        art.thresholds  # validates them
        return art

    def _referenced_files(self) -> list[str]:
        refs = []
        for s in self.manifest["segments"] + [self.manifest["baseline"]]:
            refs += [s[k] for k in ("file", "fp16_file", "int8_file", "int8_tensorrt_file") if s.get(k)]
        if self.single_graph is not None:
            refs.append(self.single_graph["file"])
        return refs

    def verify(self) -> None:
        """Check that every listed file exists and has its recorded sha256."""
        for rel, info in self.manifest["files"].items():
            p = safe_relpath(self.root, rel)
            if not p.exists():
                raise EdgeBranchyError(f"artifact file missing: {p}")
            data = read_bytes(p, "artifact-file") if rel.endswith(".onnx") else None
            got, want = sha256_regular(p, "artifact-file") if data is None else sha256_bytes(data), info.get("sha256")
            if got != want:
                raise EdgeBranchyError(f"artifact file {p} has been modified or damaged: sha256 {got[:16]}... "
                                       f"does not match the recorded {str(want)[:16]}...")
            if data is not None:
                refuse_external_data(p, data)

    # -- accessors -------------------------------------------------------------------------------
    @property
    def num_exits(self) -> int:
        return len(self.manifest["exits"])

    @property
    def thresholds(self) -> list[float]:
        from edgebranchy.util.checks import validate_thresholds

        # None: uncalibrated, nobody exits early
        ts = [e.get("threshold") for e in self.manifest["exits"][:-1]]
        return validate_thresholds([0.0 if t is None else t for t in ts], where=f"{self.root / MANIFEST}: exit threshold")

    @property
    def calibrated(self) -> bool:
        return all(e.get("threshold") is not None for e in self.manifest["exits"][:-1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self._shape is None:
            self._shape = tuple(int(v) for v in self.manifest["input"]["shape"])
        return self._shape

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def entropy_normalized(self) -> bool:
        return bool(self.manifest["entropy"].get("normalized", False))

    @property
    def temperatures(self) -> list[float] | None:
        """Per model exit, the temperature the entropy divides logits by (None: all 1)."""
        return self.manifest["entropy"].get("temperatures")

    @property
    def model_exits(self) -> list[int]:
        """The segment plan: the model exit each artifact segment ends with."""
        return [int(s.get("model_exit", i)) for i, s in enumerate(self.manifest["segments"])]

    def exit_names(self) -> list[str]:
        """Each segment's exit as the user knows it: `exit k`, with the model's own number beside it where side
        exits were fused away at export (`exit 0 (model exit 1)`), so calibrate's numbering is still seen."""
        return [exit_label(k, self.model_exits) for k in range(len(self.model_exits))]


    @property
    def source(self) -> dict:
        """Where the artifact came from: `checkpoint` path and `checkpoint_sha256` (may be empty)."""
        return self.manifest.get("source") or {}

    def segment_inputs(self, k: int) -> list[str]:
        """Input names of segment k's graph (`x`, or `x.0, x.1, ...` when it takes several tensors)."""
        return list(self.manifest["segments"][k].get("inputs") or ["x"])

    def segment_outputs(self, k: int) -> list[str]:
        """Output names of segment k's graph: its features (none for the last), logits, entropy."""
        rec = self.manifest["segments"][k].get("outputs")
        return list(rec) if rec else segment_io_names(1, 1, k == self.num_exits - 1)[1]

    def segment_input_shapes(self, k: int) -> dict[str, tuple | None]:
        """Segment k's inputs, name -> shape without the batch axis (None where the manifest does not say)."""
        names = self.segment_inputs(k)
        if k == 0:
            return {names[0]: self.input_shape}
        return dict(zip(names, _shapes(self.manifest["segments"][k], "input_shapes", "input_shape", len(names))))

    def segment_feature_shapes(self, k: int) -> dict[str, tuple | None]:
        """The tensors segment k passes on, name -> shape without the batch axis (empty for the last)."""
        names = [n for n in self.segment_outputs(k) if n.startswith("features")]
        return dict(zip(names, _shapes(self.manifest["segments"][k], "feature_shapes", "feature_shape", len(names))))

    @property
    def single_graph(self) -> dict | None:
        """The single early-exit graph's manifest entry, or None when the artifact has none."""
        return self.manifest.get("single_graph")

    def single_graph_file(self) -> Path:
        if self.single_graph is None:
            raise EdgeBranchyError(f"{self.root}: the artifact has no single early-exit graph; re-export it with "
                                   "`edgebranchy export` (or run with form='segments')")
        return safe_relpath(self.root, self.single_graph["file"])

    def segment_file(self, k: int, precision: str = "fp32", tensorrt: bool = False) -> Path:
        """Segment k's graph of `precision`; with `tensorrt`, the INT8 graph in the form TensorRT takes
        (symmetric activations, FP32 biases: export/quantize.py) where it differs from ONNX Runtime's."""
        return self._file(self.manifest["segments"][k], precision, f"segment {k}", tensorrt)

    def baseline_file(self, precision: str = "fp32", tensorrt: bool = False) -> Path:
        return self._file(self.manifest["baseline"], precision, "baseline", tensorrt)

    def _file(self, entry: dict, precision: str, what: str, tensorrt: bool = False) -> Path:
        if check_precision(precision) == "fp32":
            rel = entry["file"]
        else:  # fp16_file, int8_file (int8_tensorrt_file)
            key = f"{precision}_tensorrt_file" if tensorrt and f"{precision}_tensorrt_file" in entry \
                else f"{precision}_file"
            rel = entry.get(key)
            if not rel:
                raise EdgeBranchyError(f"{self.root}: no {precision.upper()} graph for the {what}; re-export with "
                                       f"`precision` {precision}")
        return safe_relpath(self.root, rel)

    def preprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixels (N x C x H x W, as the dataset stores them) -> normalised float32 input."""
        i = self.manifest["input"]
        x = np.asarray(raw, dtype=np.float32) / np.float32(i["scale"])
        m = np.asarray(i["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(i["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        return (x - m) / s

    def check_input(self, x: Any) -> np.ndarray:
        """Validate a normalised input batch: ndarray, float32, N x C x H x W with the artifact's C, H, W."""
        if not isinstance(x, np.ndarray):
            raise EdgeBranchyError(f"input must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise EdgeBranchyError(f"input dtype must be float32 (normalised pixels), got {x.dtype}; "
                                   "use Artifact.preprocess on raw pixels")
        want = self.input_shape
        if x.shape[1:] != want:
            raise EdgeBranchyError(f"input shape {tuple(x.shape)} does not match the artifact's "
                                   f"(N, {', '.join(map(str, want))})")
        return np.ascontiguousarray(x)

    def sha256(self) -> str:
        return sha256_regular(self.root / MANIFEST, "manifest")

    # -- updates ---------------------------------------------------------------------------------
    def add_files(self, rels: list[str], updates: dict | None = None) -> None:
        """Record new files' hashes (and top-level manifest keys) and rewrite manifest.json atomically."""
        for rel in rels:
            p = safe_relpath(self.root, rel)
            self.manifest["files"][rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        if updates:
            self.manifest.update(updates)
        atomic_write_json(self.root / MANIFEST, self.manifest)


def _shapes(seg: dict, many: str, one: str, count: int) -> list:
    """A segment's `count` tensor shapes from its manifest entry (`input_shapes`, else `input_shape` for one
    tensor; likewise the features), each a tuple or None where unknown."""
    shapes = seg.get(many) or ([seg.get(one)] if count == 1 else None)
    if not shapes or len(shapes) != count:
        return [None] * count
    return [None if s is None else tuple(int(d) for d in s) for s in shapes]


def write_artifact_dir(out: str | os.PathLike, build, force: bool = False) -> Path:
    """Create the artifact directory atomically: `build(tmpdir)` fills a temporary sibling, then it is renamed.

    An existing directory is only replaced with force=True (and only after the new one is complete);
    callers check first that it is an earlier artifact (util/outputs.check_output).
    """
    return atomic_write_dir(out, build, replace=force)
