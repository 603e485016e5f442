"""TensorRT engines for an artifact, built on the device: one per segment plus the baseline.

Engines only run on the TensorRT version and GPU that built them, so they live
under `ARTIFACT/engines/<device-key>/` where the key hashes everything that makes
an engine: the ONNX graphs' sha256, TensorRT version, GPU name and compute
capability, DLA core, precision, profile shapes and builder settings.
`engine.json` beside the plans holds those components; `tensorrt.load.load_engine`
refuses engines whose components differ from the device's. A timing cache per
(GPU, TensorRT version) speeds up rebuilds.

tensorrt and pycuda are imported inside the functions that need them. Runs on
JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from edgebranchy.artifact.engines import ENGINES_DIR, device_key, timing_cache_rel
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.tensorrt import compat
from edgebranchy.tensorrt.device import GpuInfo, device_facts, import_tensorrt, make_logger
from edgebranchy.tensorrt.settings import validate_settings
from edgebranchy.util.files import atomic_write_bytes, atomic_write_json, read_json, sha256_bytes, sha256_file

INPUT_NAME = "x"

#: attributes this module uses on TensorRT objects (builder, network, parser, config, profile, runtime, ...)
TRT_OBJECT_API = frozenset({
    "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    "parse", "num_errors", "get_error", "node", "desc", "code", "num_inputs", "get_input", "name", "shape",
    "set_shape", "add_optimization_profile", "create_timing_cache", "set_timing_cache", "serialize",
})


# ---------------------------------------------------------------- building

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


def _parse(trt: Any, builder: Any, logger: Any, plan: compat.BuildPlan, data: bytes, what: str,
           rel: str) -> Any:
    network = builder.create_network(compat.network_flags(trt, plan))
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
    version = compat.parse_version(trt.__version__)
    plan = compat.plan_build(version, s.precision, s.builder_optimization_level, s.dla_core, s.gpu_fallback,
                             s.tf32)
    for note in plan.notes:
        log(f"note: {note}")
    facts = device_facts(trt, gpu)
    if plan.graph_precision == "fp16" and not all(seg.get("fp16_file") for seg in art.manifest["segments"]):
        raise EdgeBranchyError(f"TensorRT {facts['tensorrt']} takes the precision from the graph and this artifact "
                               f"has no FP16 graphs: re-export with `edgebranchy export ... --precision fp16`")
    jobs = _jobs(art, plan.graph_precision)
    graphs = {j.name: _read_graph(art, j.rel) for j in jobs}
    opt = s.opt_batch  # kernels are tuned for kOPT: the typical batch, not the largest
    # DLA: profile min = opt = max (NvInfer.h 8.5 addInput; DLA layer restrictions): one fixed batch, the
    # typical one; the backend pads smaller (compacted) batches up to it
    fixed = opt if plan.dla_core is not None else None
    lo, hi = (fixed, fixed) if fixed else (1, s.max_batch)
    profiles = {j.name: {"input": INPUT_NAME, "min": [lo, *j.shape], "opt": [opt, *j.shape],
                         "max": [hi, *j.shape]} for j in jobs}
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
        "profile_sharing": plan.profile_sharing is not None,
        "tf32": plan.tf32,
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
        compat.configure(trt, builder, config, plan, s.workspace_mb << 20)
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
        "max_batch": fixed or s.max_batch,
        "max_batch_requested": s.max_batch,
        "fixed_batch": fixed,  # DLA: every run is this batch (smaller ones padded)
        "opt_batch": s.opt_batch,
        "profile_sharing": plan.profile_sharing is not None,  # False: one execution context per engine (one lane)
        "tf32": plan.tf32,
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
