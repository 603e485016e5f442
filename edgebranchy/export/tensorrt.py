"""TensorRT engines for an artifact, built on the device: one per segment plus the baseline.

Engines only run on the TensorRT version and GPU that built them, so they live
under `ARTIFACT/engines/<device-key>/` where the key hashes everything that makes
an engine: the ONNX graphs' sha256, TensorRT version, GPU name and compute
capability, DLA core, precision, profile shapes and builder settings.
`engine.json` beside the plans holds those components; `load_engine` refuses
engines whose components differ from the device's. A timing cache per
(GPU, TensorRT version) speeds up rebuilds.

tensorrt and pycuda are imported inside the functions that need them. Runs on
JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.export import trt_compat
from edgebranchy.export.artifact import Artifact
from edgebranchy.util.files import atomic_write_bytes, atomic_write_json, read_json, sha256_bytes, sha256_file

ENGINES_DIR = "engines"
INPUT_NAME = "x"
SETTINGS_KEYS = ("precision", "workspace_mb", "builder_optimization_level", "max_batch", "dla_core", "gpu_fallback")

#: attributes this module uses on TensorRT objects (builder, network, parser, config, profile, runtime, ...)
TRT_OBJECT_API = frozenset({
    "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    "parse", "num_errors", "get_error", "node", "desc", "code", "num_inputs", "get_input", "name", "shape",
    "set_shape", "add_optimization_profile", "create_timing_cache", "set_timing_cache", "serialize",
    "deserialize_cuda_engine",
})

GpuInfo = Callable[[], Tuple[str, Tuple[int, int]]]


def rebuild_hint(root: Any) -> str:
    return f"rebuild them on this device with `edgebranchy export {root} --tensorrt`"


# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class BuildSettings:
    """The validated `[tensorrt]` table of a device profile."""

    precision: str
    workspace_mb: int
    builder_optimization_level: int
    max_batch: int
    dla_core: int
    gpu_fallback: bool


def _int_setting(s: dict, key: str, lo: int, hi: Optional[int] = None) -> int:
    v = s[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rule = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise EdgeBranchyError(f"[tensorrt].{key} must be an integer {rule}, got {v!r}")
    return v


def validate_settings(settings: Any, precision: Optional[str] = None) -> BuildSettings:
    """Check a `[tensorrt]` settings dict (or a profile's TensorRTConfig); `precision` (if given) overrides
    the profile's."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        settings = dataclasses.asdict(settings)
    if not isinstance(settings, dict):
        raise EdgeBranchyError(f"TensorRT settings must be a table/dict, got {type(settings).__name__}")
    s = dict(settings)
    if precision is not None:
        s["precision"] = precision
    unknown = sorted(set(s) - set(SETTINGS_KEYS))
    if unknown:
        raise EdgeBranchyError(f"unknown [tensorrt] setting {unknown[0]!r} (known: {', '.join(SETTINGS_KEYS)})")
    missing = [k for k in SETTINGS_KEYS if k not in s]
    if missing:
        raise EdgeBranchyError(f"[tensorrt].{missing[0]} is missing (needed: {', '.join(SETTINGS_KEYS)})")
    if s["precision"] not in ("fp32", "fp16"):
        extra = " (INT8 needs a graph with explicit Q/DQ nodes; not supported yet)" if s["precision"] == "int8" else ""
        raise EdgeBranchyError(f"[tensorrt].precision must be \"fp32\" or \"fp16\", got {s['precision']!r}{extra}")
    if not isinstance(s["gpu_fallback"], bool):
        raise EdgeBranchyError(f"[tensorrt].gpu_fallback must be true or false, got {s['gpu_fallback']!r}")
    return BuildSettings(precision=s["precision"], workspace_mb=_int_setting(s, "workspace_mb", 1),
                         builder_optimization_level=_int_setting(s, "builder_optimization_level", 0, 5),
                         max_batch=_int_setting(s, "max_batch", 1, 1 << 20), dla_core=_int_setting(s, "dla_core", -1),
                         gpu_fallback=s["gpu_fallback"])


# ---------------------------------------------------------------- device facts and keys

def import_tensorrt() -> Any:
    """The tensorrt module, or an EdgeBranchyError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise EdgeBranchyError(f"the TensorRT Python bindings cannot be imported ({e}); on Jetson they come with "
                               "JetPack (python3-libnvinfer): create the venv with --system-site-packages") from None
    return trt


def gpu_info(device: int = 0) -> Tuple[str, Tuple[int, int]]:
    """(GPU name, compute capability) of CUDA device `device`, through pycuda."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise EdgeBranchyError(f"pycuda is needed to identify the GPU for TensorRT ({e}); "
                               "install it with `pip install pycuda` (needs nvcc and cuda.h)") from None
    cuda.init()
    if device >= cuda.Device.count():
        raise EdgeBranchyError(f"no CUDA device {device} (found {cuda.Device.count()})")
    d = cuda.Device(device)
    major, minor = d.compute_capability()
    return str(d.name()), (int(major), int(minor))


def device_facts(trt: Any, gpu: Optional[GpuInfo] = None) -> dict:
    """What identifies this device for engines: TensorRT version, GPU name, compute capability."""
    name, cc = (gpu or gpu_info)()
    return {"tensorrt": str(trt.__version__), "gpu": name, "compute_capability": f"{cc[0]}.{cc[1]}"}


def _slug(text: str, n: int = 24) -> str:
    s = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.")
    return s[:n].strip("-.") or "gpu"


def device_key(components: dict) -> str:
    """A readable prefix plus a short hash over every component."""
    digest = hashlib.sha256(json.dumps(components, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    cc = str(components["compute_capability"]).replace(".", "")
    dla = "" if components.get("dla_core") is None else f"-dla{components['dla_core']}"
    return (f"{_slug(components['gpu'])}-sm{cc}-trt{_slug(components['tensorrt'], 16)}-"
            f"{components['precision']}{dla}-{digest}")


def timing_cache_rel(facts: dict) -> str:
    return f"{ENGINES_DIR}/timing-{_slug(facts['gpu'])}-{_slug(facts['tensorrt'], 16)}.cache"


def engine_names(art: Artifact) -> list:
    return [f"seg{k}" for k in range(art.num_exits)] + ["baseline"]


# ---------------------------------------------------------------- building

def make_logger(trt: Any, sink: Callable[[str], None]) -> Any:
    """A trt.ILogger that forwards warnings/errors to `sink` and keeps the errors."""
    errors_ = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
    warning = trt.ILogger.Severity.WARNING

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            if severity in errors_:
                self.errors.append(str(msg))
                sink(f"TensorRT error: {msg}")
            elif severity == warning:
                sink(f"TensorRT warning: {msg}")

    return _Logger()


def _node_label(data: bytes, node: int) -> str:
    if node < 0:
        return "the model"
    try:
        import onnx

        n = onnx.load_from_string(data).graph.node[node]
        return f"node {node} ({n.op_type} {n.name!r})"
    except ImportError:
        return f"node {node}"
    except Exception:  # noqa: BLE001 - only decorates an error message
        return f"node {node}"


def _parse(trt: Any, builder: Any, logger: Any, plan: trt_compat.BuildPlan, data: bytes, what: str,
           rel: str) -> Any:
    network = builder.create_network(trt_compat.network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        msgs = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            msgs.append(f"{_node_label(data, int(err.node()))}: {err.desc()} [{err.code()}]")
        detail = "; ".join(msgs) or "; ".join(logger.errors) or "no reason given"
        raise EdgeBranchyError(f"TensorRT cannot parse the {what} graph {rel}: {detail}")
    return network, parser


def _check_input(network: Any, shape: tuple, what: str) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [INPUT_NAME]:
        raise EdgeBranchyError(f"the {what} graph has inputs {names}; expected one input named {INPUT_NAME!r}")
    dims = tuple(int(d) for d in network.get_input(0).shape)
    if len(dims) != len(shape) + 1 or dims[1:] != tuple(shape):
        raise EdgeBranchyError(f"the {what} graph's input has shape {dims}; the manifest says (N, {shape})")


@dataclass
class _Job:
    name: str
    what: str
    rel: str          # ONNX graph, relative to the artifact
    shape: tuple      # input shape without the batch axis


def _jobs(art: Artifact, graph_precision: str) -> list:
    jobs = []
    for k, seg in enumerate(art.manifest["segments"]):
        path = art.segment_file(k, graph_precision)
        jobs.append(_Job(f"seg{k}", f"segment {k}", path.relative_to(art.root).as_posix(),
                         tuple(int(v) for v in seg["input_shape"])))
    path = art.baseline_file(graph_precision)
    jobs.append(_Job("baseline", "baseline", path.relative_to(art.root).as_posix(), art.input_shape))
    return jobs


def _read_graph(art: Artifact, rel: str) -> Tuple[bytes, str]:
    data = (art.root / rel).read_bytes()
    digest = sha256_bytes(data)
    if digest != art.manifest["files"].get(rel, {}).get("sha256"):
        raise EdgeBranchyError(f"{art.root / rel} does not match its sha256 in the manifest: re-export the artifact")
    return data, digest


def _verify_graphs(art: Artifact) -> None:
    """Check the sha256 of every listed file outside engines/."""
    for rel, info in art.manifest["files"].items():
        if rel.startswith(ENGINES_DIR + "/"):
            continue
        path = art.root / rel
        if not path.is_file():
            raise EdgeBranchyError(f"artifact file missing: {path}")
        if sha256_file(path) != info.get("sha256"):
            raise EdgeBranchyError(f"artifact file {path} has been modified or damaged (sha256 differs from the "
                                   "manifest): re-export the artifact")


def _cache_hit(art: Artifact, key: str, components: dict, names: list) -> Optional[str]:
    """None when the engines for `key` are present and intact; else why they must be (re)built."""
    d = art.root / ENGINES_DIR / key
    rec = (art.manifest.get("tensorrt") or {}).get(key)
    if rec is None:
        return "no engines for this device key yet"
    if not (d / "engine.json").is_file():
        return "engine.json is missing"
    try:
        if read_json(d / "engine.json", "engine description") != components:
            return "engine.json differs"
    except EdgeBranchyError as e:
        return str(e)
    for name in names:
        rel = rec.get("files", {}).get(name)
        info = art.manifest["files"].get(rel or "")
        if not rel or info is None or not (art.root / rel).is_file() or sha256_file(art.root / rel) != info["sha256"]:
            return f"{name} engine missing or modified"
    return None


def build_engines(artifact_dir: Any, settings: dict, precision: Optional[str] = None,
                  log: Callable[[str], None] = print, force: bool = False,
                  gpu: Optional[GpuInfo] = None) -> dict:
    """Build (or reuse) the TensorRT engines of an artifact for this device; returns the manifest record
    of the device key plus `device_key` and `cached`.

    `settings`: the `[tensorrt]` table of a device profile; `precision` overrides its precision.
    `gpu`: returns (GPU name, (major, minor)); default: pycuda device 0.
    """
    s = validate_settings(settings, precision)
    art = Artifact.load(artifact_dir, verify=False)
    _verify_graphs(art)  # engines are checked by the cache test below: a damaged one is rebuilt
    trt = import_tensorrt()
    version = trt_compat.parse_version(trt.__version__)
    plan = trt_compat.plan_build(version, s.precision, s.builder_optimization_level, s.dla_core, s.gpu_fallback)
    for note in plan.notes:
        log(f"note: {note}")
    facts = device_facts(trt, gpu)
    if plan.graph_precision == "fp16" and not all(seg.get("fp16_file") for seg in art.manifest["segments"]):
        raise EdgeBranchyError(f"TensorRT {facts['tensorrt']} takes the precision from the graph and this artifact "
                               f"has no FP16 graphs: re-export with `edgebranchy export ... --precision fp16`")
    jobs = _jobs(art, plan.graph_precision)
    graphs = {j.name: _read_graph(art, j.rel) for j in jobs}
    opt = s.max_batch
    profiles = {j.name: {"input": INPUT_NAME, "min": [1, *j.shape], "opt": [opt, *j.shape],
                         "max": [s.max_batch, *j.shape]} for j in jobs}
    components = {
        **facts,
        "onnx_sha256": {j.name: graphs[j.name][1] for j in jobs},
        "precision": plan.precision,
        "precision_mode": plan.precision_mode,
        "dla_core": plan.dla_core,
        "gpu_fallback": plan.gpu_fallback,
        "profiles": profiles,
        "builder_optimization_level": plan.optimization_level,
        "workspace_mb": s.workspace_mb,
    }
    key = device_key(components)
    edir = f"{ENGINES_DIR}/{key}"
    names = [j.name for j in jobs]
    why = "forced" if force else _cache_hit(art, key, components, names)
    if why is None:
        log(f"TensorRT engines for {key} are up to date (cache hit)")
        return {**art.manifest["tensorrt"][key], "device_key": key, "cached": True}
    log(f"building TensorRT engines for {key} ({why})")

    logger = make_logger(trt, log)
    builder = trt.Builder(logger)
    tc_rel = timing_cache_rel(facts)
    tc_path = art.root / tc_rel
    cache, tc_state = _timing_cache(builder.create_builder_config(), tc_path, log)
    files: Dict[str, str] = {}
    seconds: Dict[str, float] = {}
    for j in jobs:
        data = graphs[j.name][0]
        t0 = time.perf_counter()
        network, _parser = _parse(trt, builder, logger, plan, data, j.what, j.rel)
        _check_input(network, j.shape, j.what)
        config = builder.create_builder_config()
        trt_compat.configure(trt, builder, config, plan, s.workspace_mb << 20)
        p = profiles[j.name]
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, tuple(p["min"]), tuple(p["opt"]), tuple(p["max"]))
        config.add_optimization_profile(profile)
        if not config.set_timing_cache(cache, False):
            raise EdgeBranchyError(f"TensorRT refused the timing cache {tc_rel} while building the {j.what} engine")
        del logger.errors[:]
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EdgeBranchyError(f"TensorRT could not build the {j.what} engine from {j.rel}: "
                                   + ("; ".join(logger.errors) or "no reason given"))
        rel = f"{edir}/{j.name}.plan"
        atomic_write_bytes(art.root / rel, bytes(serialized))
        files[j.name] = rel
        seconds[j.name] = round(time.perf_counter() - t0, 3)
        log(f"{j.what}: engine {rel} ({seconds[j.name]:.1f} s)")
    atomic_write_bytes(tc_path, bytes(cache.serialize()))
    files["engine.json"] = f"{edir}/engine.json"
    atomic_write_json(art.root / files["engine.json"], components)
    record = {
        "dir": edir,
        "files": files,
        "components": components,
        "tensorrt": facts["tensorrt"],
        "gpu": facts["gpu"],
        "compute_capability": facts["compute_capability"],
        "precision": plan.precision,
        "precision_mode": plan.precision_mode,
        "graphs": {j.name: j.rel for j in jobs},
        "dla_core": plan.dla_core,
        "gpu_fallback": plan.gpu_fallback,
        "max_batch": s.max_batch,
        "profiles": profiles,
        "builder_optimization_level": plan.optimization_level,
        "builder_optimization_level_requested": s.builder_optimization_level,
        "workspace_mb": s.workspace_mb,
        "timing_cache": {"file": tc_rel, "state": tc_state},
        "notes": list(plan.notes),
        "build_seconds": seconds,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    engines = dict(art.manifest.get("tensorrt") or {})
    engines[key] = record
    art.add_files(list(files.values()), {"tensorrt": engines})
    return {**record, "device_key": key, "cached": False}


def _timing_cache(config: Any, path: Path, log: Callable[[str], None]) -> Tuple[Any, str]:
    """The timing cache for this GPU and TensorRT version: loaded from `path` if there and accepted, else empty."""
    if not path.is_file():
        return config.create_timing_cache(b""), "new"
    try:
        cache = config.create_timing_cache(path.read_bytes())
        err = "TensorRT refused it" if cache is None or not config.set_timing_cache(cache, False) else None
    except Exception as e:  # noqa: BLE001 - a damaged cache is dropped, and the fact recorded
        err = f"{type(e).__name__}: {e}"
    if err is not None:
        log(f"warning: timing cache {path} unusable ({err}); starting an empty one")
        return config.create_timing_cache(b""), f"discarded ({err})"
    return cache, "loaded"


# ---------------------------------------------------------------- loading

def _differences(have: dict, want: dict) -> list:
    return [k for k in want if have.get(k) != want[k]]


def _describe(c: dict) -> str:
    text = f"TensorRT {c.get('tensorrt')} on {c.get('gpu')!r} (compute capability {c.get('compute_capability')})"
    if c.get("precision"):
        text += f", {c['precision']}"
    if c.get("dla_core") is not None:
        text += f", DLA core {c['dla_core']}"
    return text


def select_engines(art: Artifact, want: dict) -> Tuple[str, dict]:
    """The device key and manifest record whose components equal every item of `want`
    (`want` may also name a `device_key`). EdgeBranchyError, with the rebuild hint, when none does."""
    records = art.manifest.get("tensorrt") or {}
    want = dict(want)
    key_wanted = want.pop("device_key", None)
    if key_wanted is not None:
        if key_wanted not in records:
            raise EdgeBranchyError(f"{art.root}: no TensorRT engines with device key {key_wanted!r} "
                                   f"(present: {', '.join(records) or 'none'}); {rebuild_hint(art.root)}")
        records = {key_wanted: records[key_wanted]}
    if not records:
        raise EdgeBranchyError(f"{art.root} has no TensorRT engines; build them on this device with "
                               f"`edgebranchy export {art.root} --tensorrt`")
    found = {k: r for k, r in records.items() if not _differences(r.get("components", {}), want)}
    if not found:
        lines = [f"{k}: {_describe(r.get('components', {}))} (differs in: "
                 f"{', '.join(_differences(r.get('components', {}), want))})" for k, r in records.items()]
        raise EdgeBranchyError(f"the TensorRT engines in {art.root} were built for another device or setting; "
                               f"this device has {_describe(want)}. Engines only run on the TensorRT version and GPU "
                               f"that built them. Present: " + "; ".join(lines) + f". {rebuild_hint(art.root)}")
    if len(found) > 1:
        raise EdgeBranchyError(f"{art.root}: several engine sets fit this device ({', '.join(found)}); choose one "
                               "with the precision, dla_core or device_key option")
    key = next(iter(found))
    return key, found[key]


@dataclass
class LoadedEngines:
    """Deserialised engines of one device key (the runtime and logger must outlive them)."""

    key: str
    record: dict
    runtime: Any
    logger: Any
    engines: Dict[str, Any]


def load_engine(artifact: Artifact, device_key_components: dict,
                log: Callable[[str], None] = lambda s: None) -> LoadedEngines:
    """Deserialise the engines (every segment and the baseline) whose key components match
    `device_key_components` (the device facts; optionally precision, dla_core, device_key).
    Refuses engines built for another TensorRT version, GPU or setting, saying to rebuild."""
    trt = import_tensorrt()
    key, record = select_engines(artifact, device_key_components)
    comps = record.get("components", {})
    files = record.get("files", {})
    for name in engine_names(artifact) + ["engine.json"]:
        if name not in files or not (artifact.root / files[name]).is_file():
            raise EdgeBranchyError(f"the {name} file of the TensorRT engines {key} is missing; "
                                   f"{rebuild_hint(artifact.root)}")
    on_disk = read_json(artifact.root / files["engine.json"], "engine description")
    if on_disk != comps:
        diff = sorted(set(_differences(on_disk, comps)) | set(_differences(comps, on_disk)))
        raise EdgeBranchyError(f"{artifact.root / record['dir']}/engine.json does not match the manifest "
                               f"(differs in: {', '.join(diff)}); {rebuild_hint(artifact.root)}")
    for name, digest in comps.get("onnx_sha256", {}).items():
        rel = record.get("graphs", {}).get(name)
        if rel is None or artifact.manifest["files"].get(rel, {}).get("sha256") != digest:
            raise EdgeBranchyError(f"the {name} engine was built from another graph than the artifact's "
                                   f"{rel}; {rebuild_hint(artifact.root)}")
    logger = make_logger(trt, log)
    runtime = trt.Runtime(logger)
    engines = {}
    for name in engine_names(artifact):
        rel = files[name]
        data = (artifact.root / rel).read_bytes()
        if sha256_bytes(data) != artifact.manifest["files"].get(rel, {}).get("sha256"):
            raise EdgeBranchyError(f"engine {artifact.root / rel} does not match its sha256 in the manifest; "
                                   f"{rebuild_hint(artifact.root)}")
        del logger.errors[:]
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EdgeBranchyError(f"TensorRT {trt.__version__} refused the engine {rel} "
                                   f"({'; '.join(logger.errors) or 'no reason given'}); it was built for "
                                   f"{_describe(comps)}; {rebuild_hint(artifact.root)}")
        engines[name] = engine
    return LoadedEngines(key, record, runtime, logger, engines)
