"""TensorRT engines for an artifact, built on the device: one per segment plus the baseline.

Engines only run on the TensorRT version and GPU that built them, so they live
under `ARTIFACT/engines/<device-key>/` where the key hashes everything that makes
an engine: the ONNX graphs' sha256, TensorRT version, GPU name and compute
capability, DLA core, precision, profile shapes and builder settings.
`engine.json` beside the plans holds those components; `tensorrt.load.load_engine`
refuses engines whose components differ from the device's. A timing cache per
(GPU, TensorRT version) speeds up rebuilds. Beside the segments and the baseline, tiny
gather engines (one Gather layer, built through the network API) compact a batch on the
device in one call. Where execution contexts cannot share a profile (8.5), every engine
has one identical optimisation profile per lane.

tensorrt and pycuda are imported inside the functions that need them. Runs on
JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from edgebranchy.artifact.engines import ENGINES_DIR, device_key, feature_gathers, timing_cache_rel
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.tensorrt import compat
from edgebranchy.tensorrt.device import GpuInfo, device_facts, import_tensorrt, make_logger
from edgebranchy.tensorrt.settings import validate_settings
from edgebranchy.util.files import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from edgebranchy.util.readers import load_json, read_bytes
from edgebranchy.vocab import RECALIBRATED

INPUT_NAME = "x"
INDEX_NAME = "index"
GATHER_OUTPUT = "rows"
SINGLE = "single"

#: attributes this module uses on TensorRT objects (builder, network, parser, config, profile, runtime, ...)
TRT_OBJECT_API = frozenset({
    "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    "parse", "num_errors", "get_error", "node", "desc", "code", "num_inputs", "get_input", "name", "shape",
    "set_shape", "add_optimization_profile", "create_timing_cache", "set_timing_cache", "serialize",
    "add_input", "add_gather", "mark_output", "get_output", "deserialize_cuda_engine", "DLA_core",
})


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


def _check_inputs(network: Any, shapes: Dict[str, tuple], what: str) -> None:
    """The parsed graph's inputs are the manifest's, by name, each (N, *shape)."""
    dims = {network.get_input(i).name: tuple(int(d) for d in network.get_input(i).shape)
            for i in range(network.num_inputs)}
    if sorted(dims) != sorted(shapes):
        raise EdgeBranchyError(f"the {what} graph has inputs {sorted(dims)}; the manifest says {sorted(shapes)}")
    for name, shape in shapes.items():
        if len(dims[name]) != len(shape) + 1 or dims[name][1:] != tuple(shape):
            raise EdgeBranchyError(f"the {what} graph's input {name!r} has shape {dims[name]}; the manifest says "
                                   f"(N, {', '.join(map(str, shape))})")


@dataclass
class _Job:
    name: str
    what: str
    rel: str          # ONNX graph, relative to the artifact ("" for a gather engine, built through the API)
    shapes: Dict[str, tuple]  # input name -> shape without the batch axis (several: a split inside a block)
    dtype: str = "float32"  # a gather engine's row type

    @property
    def shape(self) -> tuple:
        """The first input's shape (a gather engine's rows)."""
        return next(iter(self.shapes.values()))


def _jobs(art: Artifact, graph_precision: str) -> list:
    jobs = []
    for k in range(art.num_exits):
        path = art.segment_file(k, graph_precision, tensorrt=True)
        jobs.append(_Job(f"seg{k}", f"segment {k}", path.relative_to(art.root).as_posix(),
                         _known(art, art.segment_input_shapes(k), f"segment {k}'s inputs")))
    path = art.baseline_file(graph_precision, tensorrt=True)
    jobs.append(_Job("baseline", "baseline", path.relative_to(art.root).as_posix(), {INPUT_NAME: art.input_shape}))
    # features are float16 in the fp16 graphs (only the host boundary stays float32); logits are float32
    feature = "float16" if graph_precision == "fp16" else "float32"
    for name, k, tensor in feature_gathers(art):
        shape = _known(art, {tensor: art.segment_feature_shapes(k)[tensor]}, f"segment {k}'s {tensor}")[tensor]
        jobs.append(_Job(name, f"gather of segment {k}'s {tensor}", "", {INPUT_NAME: shape}, feature))
    jobs.append(_Job("gather_logits", "gather of the logits", "", {INPUT_NAME: (len(art.classes),)}))
    return jobs


def _known(art: Artifact, shapes: dict, what: str) -> dict:
    """`shapes` (name -> shape), refused where the manifest does not record one (an older export)."""
    if any(v is None for v in shapes.values()):
        raise EdgeBranchyError(f"{art.root}: the manifest does not record the shape of {what} (exported by an "
                               "older edgebranchy): re-export the artifact")
    return shapes


def _single_job(art: Artifact, version: compat.Version, log: Callable[[str], None],
                quantized: bool = False) -> Tuple[list, dict]:
    """The single early-exit graph's engine job where this TensorRT imports `If` (10.0+), and what is recorded
    about it either way (compat.single_graph_support: why not, or the host synchronisation inside `If`)."""
    entry = art.single_graph
    if entry is None:
        return [], {"engine": None, "reason": "the artifact has no single graph"}
    if quantized:  # an fp32 engine beside int8 segments would answer with other exits: not built
        return [], {"engine": None, "reason": "the single graph is made of the fp32 segments; int8 engines run "
                                              "the segments"}
    ok, why = compat.single_graph_support(version)
    if not ok:
        log(f"note: single graph not built: {why}")
        return [], {"engine": None, "reason": why}
    return ([_Job(SINGLE, "single early-exit graph", entry["file"], {INPUT_NAME: art.input_shape})],
            {"engine": SINGLE, "reason": why, "thresholds": list(entry.get("thresholds_at_export") or [])})


def _gather_network(trt: Any, builder: Any, version: compat.Version, job: _Job) -> Any:
    """rows = x[index] on the batch axis: one Gather layer (compaction in one call, any number of runs)."""
    network = builder.create_network(compat.gather_network_flags(trt, version))
    dtype = trt.DataType.HALF if job.dtype == "float16" else trt.DataType.FLOAT
    data = network.add_input(INPUT_NAME, dtype, (-1, *job.shape))
    index = network.add_input(INDEX_NAME, trt.DataType.INT32, (-1,))
    layer = network.add_gather(data, index, 0)
    tensor = layer.get_output(0)
    tensor.name = GATHER_OUTPUT
    network.mark_output(tensor)
    return network


def _read_graph(art: Artifact, rel: str) -> Tuple[bytes, str]:
    data = read_bytes(art.root / rel, "artifact-file")
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


def _cache_hit(art: Artifact, key: str, components: dict, names: list, trt: Any, logger: Any) -> Optional[str]:
    """None when the engines for `key` are present, intact and accepted by this TensorRT; else why they must be
    (re)built. Every plan is deserialised: a pip wheel reports "10.3.0" without its build number, so a
    TensorRT update that keeps the version string is seen only by the runtime refusing the engine."""
    d = art.root / ENGINES_DIR / key
    rec = (art.manifest.get("tensorrt") or {}).get(key)
    if rec is None:
        return "no engines for this device key yet"
    if not (d / "engine.json").is_file():
        return "engine.json is missing"
    try:
        if load_json(d / "engine.json", "engine-description") != components:
            return "engine.json differs"
    except EdgeBranchyError as e:
        return str(e)
    for name in names:
        rel = rec.get("files", {}).get(name)
        info = art.manifest["files"].get(rel or "")
        if not rel or info is None or not (art.root / rel).is_file() or sha256_file(art.root / rel) != info["sha256"]:
            return f"{name} engine missing or modified"
    runtime = trt.Runtime(logger)
    if rec.get("dla_core") is not None:
        runtime.DLA_core = int(rec["dla_core"])
    for name in names:
        del logger.errors[:]
        if runtime.deserialize_cuda_engine(read_bytes(art.root / rec["files"][name], "engine")) is None:
            return (f"this TensorRT ({trt.__version__}) refuses the cached {name} engine: "
                    + ("; ".join(logger.errors) or "no reason given"))
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
        raise EdgeBranchyError(f"TensorRT {facts['tensorrt']} builds {plan.precision} engines from the graph's own "
                               "types (strongly typed) and this artifact has no FP16 graphs: re-export with "
                               "`edgebranchy export ... --precision fp16`")
    single_jobs, single = _single_job(art, version, log, quantized=plan.graph_precision in RECALIBRATED)
    jobs = _jobs(art, plan.graph_precision) + single_jobs
    graphs = {j.name: _read_graph(art, j.rel) for j in jobs if j.rel}
    # one lane per pipeline stage (at least two, for speculation); without profile sharing each lane needs its
    # own profile (8.5); DLA engines keep one fixed profile, so one lane there
    lanes = compat.lanes_for(art.num_exits)
    n_profiles = 1 if plan.dla_core is not None else compat.lane_profiles(version, lanes)
    if n_profiles == 1 and plan.profile_sharing is None:
        lanes = 1
    profiles = _profiles(jobs, s, plan)
    components = _components(facts, graphs, plan, profiles, n_profiles, jobs, single, s)
    key = device_key(components)
    edir = f"{ENGINES_DIR}/{key}"
    logger = make_logger(trt, log)
    why = "forced" if force else _cache_hit(art, key, components, [j.name for j in jobs], trt, logger)
    if why is None:
        log(f"TensorRT engines for {key} are up to date (cache hit)")
        return {**art.manifest["tensorrt"][key], "device_key": key, "cached": True}
    log(f"building TensorRT engines for {key} ({why})")
    files, seconds, pinned, tc_rel, tc_state = _build_all(art, trt, logger, plan, version, jobs, graphs, profiles,
                                                           n_profiles, s, facts, edir, log)
    files["engine.json"] = f"{edir}/engine.json"
    atomic_write_json(art.root / files["engine.json"], components)
    record = {
        "dir": edir, "files": files, "components": components, "tensorrt": facts["tensorrt"], "gpu": facts["gpu"],
        "compute_capability": facts["compute_capability"], "precision": plan.precision,
        "precision_mode": plan.precision_mode, "graphs": {j.name: j.rel for j in jobs if j.rel},
        "exit_head_fp32_layers": {k: v for k, v in pinned.items() if k in graphs},
        "dla_core": plan.dla_core, "gpu_fallback": plan.gpu_fallback,
        "max_batch": profiles["seg0"]["max"][0], "max_batch_requested": s.max_batch,
        "fixed_batch": s.opt_batch if plan.dla_core is not None else None,  # DLA: every run is this batch (padded)
        "opt_batch": s.opt_batch,
        "profile_sharing": plan.profile_sharing is not None,  # contexts share one profile (8.6+)
        "lanes": lanes, "lane_profiles": n_profiles,  # concurrent execution contexts; profiles per engine
        "tf32": plan.tf32, "profiles": profiles, "single_graph": single,
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


def _components(facts: dict, graphs: dict, plan: compat.BuildPlan, profiles: dict, n_profiles: int, jobs: list,
                single: dict, s: Any) -> dict:
    """Everything that makes these engines (the device key hashes it; engine.json holds it)."""
    return {
        **facts,
        "onnx_sha256": {name: digest for name, (_, digest) in graphs.items()},
        "precision": plan.precision,
        "precision_mode": plan.precision_mode,
        "exit_head": "fp32",  # the entropy is computed in FP32 on every path (compat.pin_exit_head)
        "dla_core": plan.dla_core,
        "gpu_fallback": plan.gpu_fallback,
        "profiles": profiles,
        "lane_profiles": n_profiles,
        "gathers": {j.name: {"dtype": j.dtype, "shape": list(j.shape)} for j in jobs if not j.rel},
        "single_graph": single.get("engine"),
        "builder_optimization_level": plan.optimization_level,
        "workspace_mb": s.workspace_mb,
        "profile_sharing": plan.profile_sharing is not None,
        "tf32": plan.tf32,
    }


def _build_all(art: Artifact, trt: Any, logger: Any, plan: compat.BuildPlan, version: compat.Version, jobs: list,
               graphs: dict, profiles: dict, n_profiles: int, s: Any, facts: dict, edir: str,
               log: Callable[[str], None]) -> tuple:
    """Build every job's plan into `edir` with the device's timing cache; (files, seconds, FP32-pinned layer
    counts, timing cache file, its state)."""
    builder = trt.Builder(logger)
    tc_rel = timing_cache_rel(facts)
    cache, tc_state = _timing_cache(builder.create_builder_config(), art.root / tc_rel, log)
    files: Dict[str, str] = {}
    seconds: Dict[str, float] = {}
    pinned: Dict[str, int] = {}
    for j in jobs:
        t0 = time.perf_counter()
        data, pinned[j.name] = _build_one(trt, builder, logger, plan, version, j, graphs, profiles[j.name],
                                          n_profiles, cache, s.workspace_mb << 20, tc_rel)
        rel = f"{edir}/{j.name}.plan"
        atomic_write_bytes(art.root / rel, data)
        files[j.name] = rel
        seconds[j.name] = round(time.perf_counter() - t0, 3)
        log(f"{j.what}: engine {rel} ({seconds[j.name]:.1f} s)")
    atomic_write_bytes(art.root / tc_rel, bytes(cache.serialize()))
    return files, seconds, pinned, tc_rel, tc_state


def _profiles(jobs: list, s: Any, plan: compat.BuildPlan) -> dict:
    """Each engine's optimisation profile: batch 1 to max_batch, tuned for opt_batch (kernels are chosen for kOPT:
    the typical batch). DLA: min = opt = max (NvInfer.h 8.5 addInput; DLA layer restrictions), one fixed batch,
    the typical one; the backend pads smaller (compacted) batches up to it. A gather engine's index runs
    from 1 row to the batch. A segment with several inputs (a split inside a residual block) gives every input
    the same batch range: the ONNX import names their batch dimension alike (onnx-tensorrt ModelImporter.cpp
    setDimensionNames), and named dimensions must be equal at run time (NvInfer.h 8.5.2:490)."""
    opt = s.opt_batch
    fixed = opt if plan.dla_core is not None else None
    lo, hi = (fixed, fixed) if fixed else (1, s.max_batch)
    out = {}
    for j in jobs:
        b = (1, 1, 1) if j.name == SINGLE else (lo, opt, hi)  # the single graph is for batch 1 only
        ranges = {name: {"min": [b[0], *shape], "opt": [b[1], *shape], "max": [b[2], *shape]}
                  for name, shape in j.shapes.items()}
        first = next(iter(j.shapes))
        p = {"input": first, **ranges[first]}
        if len(ranges) > 1:
            p["inputs"] = ranges
        if not j.rel:
            p[INDEX_NAME] = {"min": [1], "opt": [opt], "max": [hi]}
        out[j.name] = p
    return out


def _build_one(trt: Any, builder: Any, logger: Any, plan: compat.BuildPlan, version: compat.Version, j: _Job,
               graphs: dict, p: dict, n_profiles: int, cache: Any, workspace: int, tc_rel: str) -> Tuple[bytes, int]:
    """One engine's plan, and how many of its layers were pinned to FP32 (the exit head)."""
    if j.rel:
        data = graphs[j.name][0]
        network, _parser = _parse(trt, builder, logger, plan, data, j.what, j.rel)
        _check_inputs(network, j.shapes, j.what)
    else:
        network = _gather_network(trt, builder, version, j)
    config = builder.create_builder_config()
    # a gather engine (and the If engine) always runs on the GPU, a gather in its rows' own type
    compat.configure(trt, builder, config, plan if j.rel and j.name != SINGLE else compat.gpu_plan(plan), workspace)
    pinned = compat.pin_exit_head(trt, network, config, plan) if j.rel and j.name != SINGLE else []
    for _ in range(n_profiles):  # identical profiles: one per lane where contexts cannot share one
        profile = builder.create_optimization_profile()
        ranges = dict(p.get("inputs") or {p["input"]: p})
        if INDEX_NAME in p:
            ranges[INDEX_NAME] = p[INDEX_NAME]
        for name, q in ranges.items():
            profile.set_shape(name, tuple(q["min"]), tuple(q["opt"]), tuple(q["max"]))
        if config.add_optimization_profile(profile) < 0:  # -1: not valid (NvInfer.h 10.3.0:9052-9055)
            raise EdgeBranchyError(f"TensorRT refused the optimisation profile of the {j.what} engine: {ranges}")
    if not config.set_timing_cache(cache, False):
        raise EdgeBranchyError(f"TensorRT refused the timing cache {tc_rel} while building the {j.what} engine")
    del logger.errors[:]
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeBranchyError(f"TensorRT could not build the {j.what} engine" + (f" from {j.rel}" if j.rel else "")
                               + ": " + ("; ".join(logger.errors) or "no reason given"))
    return bytes(serialized), len(pinned)


def _timing_cache(config: Any, path: Path, log: Callable[[str], None]) -> Tuple[Any, str]:
    """The timing cache for this GPU and TensorRT version: loaded from `path` if there and accepted, else empty."""
    if not path.is_file():
        return config.create_timing_cache(b""), "new"
    try:
        cache = config.create_timing_cache(read_bytes(path, "timing-cache"))
        err = "TensorRT refused it" if cache is None or not config.set_timing_cache(cache, False) else None
    except Exception as e:  # noqa: BLE001 - a damaged cache is dropped, and the fact recorded
        err = f"{type(e).__name__}: {e}"
    if err is not None:
        log(f"warning: timing cache {path} unusable ({err}); starting an empty one")
        return config.create_timing_cache(b""), f"discarded ({err})"
    return cache, "loaded"
