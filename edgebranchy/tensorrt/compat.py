"""TensorRT version differences (8.5 -> 11.x), in one place.

Decisions are pure functions of a version tuple, so they are testable without
TensorRT; the two `apply` helpers at the end are the only code that touches
TensorRT names that do not exist in every supported version.

    8.5      explicit-batch network flag required; FP16 via BuilderFlag.FP16 with the exit head
             (entropy and everything after the logits) pinned to FP32 by precision constraints;
             no builder optimisation level (8.6+); no strongly typed networks; one optimisation
             profile per execution context (one identical profile per lane)
    8.6/9.x  as 8.5, plus the optimisation level; contexts share a profile only with
             PreviewFeature.PROFILE_SHARING_0806, and only when selected explicitly
    10.x     explicit batch implied (flag deprecated: pass 0); FP16 = the artifact's fp16 graph,
             built strongly typed (BuilderFlag.FP16 is deprecated from 10.12); every context gets profile 0
    11.x     EXPLICIT_BATCH and BuilderFlag.FP16 removed; networks are strongly
             typed: the precision comes from the graph (the artifact's fp16 graphs)

INT8 is explicit quantization everywhere: the artifact's Q/DQ graph in TensorRT's form (int8_tensorrt_file:
symmetric, export/quantize.py). On 8.5-9.x its Q/DQ layers run in INT8 only with BuilderFlag.INT8 ("Enable Int8
layer selection", NvInfer.h 8.6.1 line 8773; the network is not strongly typed, so nothing else is lowered); from
10.0 the network is built strongly typed (the Q/DQ layers give the types; a precision flag is rejected there), and
11 has no INT8 flag at all.

Every path computes the logits' entropy, the exit decision, in FP32, as torch and ONNX Runtime do.

Runs on JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.vocab import check_precision

Version = Tuple[int, int, int]

MIN_VERSION: Version = (8, 5, 0)
#: the newest major version whose API this module knows
NEWEST_KNOWN_MAJOR = 11

#: TensorRT names that are missing from at least one supported version. Only this
#: module may touch them, and only behind the decision named here (the static test
#: checks both).
VERSION_GATED = {
    "EXPLICIT_BATCH": "NetworkDefinitionCreationFlag member: required on 8.x, deprecated in 10, removed in 11",
    "FP16": "BuilderFlag member: removed in 11, where the precision comes from the graph; used on 8.5-9.x only",
    "STRONGLY_TYPED": "NetworkDefinitionCreationFlag member: added in 9.x, used from 10",
    "builder_optimization_level": "IBuilderConfig attribute: added in 8.6",
    "PROFILE_SHARING_0806": "PreviewFeature member: added in 8.6, always on (deprecated) in 10, removed in 11",
    "OBEY_PRECISION_CONSTRAINTS": "BuilderFlag member: removed in 11 (strongly typed); pins the exit head on 8.x",
    "precision": "ILayer attribute: removed in 11; the exit head's FP32 pin on 8.x",
    "set_output_type": "ILayer method: removed in 11; the exit head's FP32 pin on 8.x",
    "INT64": "DataType member: added in 10.0; the single graph's label and exit outputs",
}

#: members gated by their full path, where the bare name exists in every version (DataType.INT8 does): the first
#: version that has it, the first that has not, and why
GATED_PATHS = {
    "BuilderFlag.INT8": ((8, 5, 0), (11, 0, 0), "BuilderFlag member (NvInfer.h 8.6.1 line 8773, 10.3.0 line 8303), "
                         "removed in 11 (tensorrt.md); explicit Q/DQ on 8.5-9.x (not strongly typed) needs it"),
}

#: attributes this module uses on TensorRT objects (builder, builder config, network, layers, tensors)
TRT_OBJECT_API = frozenset({
    "set_memory_pool_limit", "set_flag", "clear_flag", "builder_optimization_level", "default_device_type",
    "DLA_core", "num_DLA_cores", "set_preview_feature", "num_layers", "get_layer", "num_inputs", "get_input",
    "num_outputs", "get_output", "name", "dtype", "precision", "set_output_type",
})

#: how the engine's precision was obtained (recorded in the manifest)
MODE_DEFAULT = "default"                  # fp32 on <= 10.x: no precision flag (TF32 cleared unless asked)
MODE_BUILDER_FLAG = "builder-flag"        # fp16 on 8.5-9.x: BuilderFlag.FP16 on the fp32 graph, exit head pinned FP32;
#                                           int8 on 8.5-9.x: BuilderFlag.INT8 on the Q/DQ graph
MODE_STRONGLY_TYPED = "strongly-typed-graph"  # fp16 on 10.x, all of 11.x: the graph's own types (fp16 graph)
#: the graph output the exit head starts from: what follows it (the entropy) is the exit decision
HEAD_SOURCE = "logits"


def parse_version(text: Any) -> Version:
    """'10.3.0.30' -> (10, 3, 0); EdgeBranchyError when it is not a version."""
    m = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if not m:
        raise EdgeBranchyError(f"cannot read the TensorRT version {text!r}")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def version_string(v: Version) -> str:
    return ".".join(str(p) for p in v)


def check_supported(v: Version) -> None:
    """Refuse versions without the name-based I/O API (execute_async_v3 and friends arrived in 8.5)."""
    if v < MIN_VERSION:
        raise EdgeBranchyError(f"TensorRT {version_string(v)} is too old: edgebranchy needs "
                               f"{version_string(MIN_VERSION)} or newer (name-based tensor I/O); "
                               "use the onnxruntime backend on this device")


def known_version(v: Version) -> bool:
    """False for a major version newer than the ones this module was written against."""
    return v[0] <= NEWEST_KNOWN_MAJOR


def explicit_batch_flag_needed(v: Version) -> bool:
    """8.x networks must be created with the EXPLICIT_BATCH flag; 10 ignores it, 11 removed it."""
    return v[0] < 10


def strongly_typed_only(v: Version) -> bool:
    """11.x networks are always strongly typed: no precision builder flags, types come from the graph."""
    return v[0] >= 11


def has_optimization_level(v: Version) -> bool:
    return v >= (8, 6, 0)


def profile_sharing(v: Version) -> Optional[str]:
    """How two execution contexts can share the engine's one optimisation profile: "implicit" from 10.0
    (every new context gets profile 0, NvInferRuntime.h 10.3 createExecutionContext), "preview-feature" on
    8.6 and 9.x (built with PROFILE_SHARING_0806; a context after the first gets -1 and must select profile 0
    itself, NvInferRuntime.h 8.6.1 lines 1749-1752), None on 8.5 (a profile per context)."""
    if v[0] >= 10:
        return "implicit"
    return "preview-feature" if v >= (8, 6, 0) else None


def lane_profiles(v: Version, lanes: int) -> int:
    """Optimisation profiles each engine is built with for `lanes` concurrent execution contexts: one they all
    share where sharing exists, else one identical profile per lane (the usual way before profile sharing)."""
    return 1 if profile_sharing(v) else max(1, int(lanes))


def lane_profile(lane: int, shared: bool) -> int:
    """The optimisation profile the execution context of `lane` selects."""
    return 0 if shared else int(lane)


def lanes_for(num_segments: int) -> int:
    """Lanes (CUDA streams, each with its own execution context per engine) for an artifact of `num_segments`:
    one per pipeline stage, so no two stages share a stream, and at least two (speculation)."""
    return max(2, int(num_segments))


def single_graph_support(v: Version) -> Tuple[bool, str]:
    """Whether this TensorRT can import the single early-exit graph (ONNX `If`), and what it costs there."""
    if v[0] < 10:
        return False, (f"TensorRT {version_string(v)} cannot import it: the 8.5/8.6 `If` importer takes a branch's "
                       "outputs from what its layers produce and do not consume (onnx-tensorrt ConditionalHelpers.cpp "
                       "addIfOutputLayers), so the exit index (a Constant) and the else-branch logits are lost")
    return True, ("importable from 10.0; TensorRT copies each `If` condition to the host inside enqueue (a "
                  "synchronisation per exit, no CUDA-graph capture: NVIDIA/TensorRT#2836), and branch engines have "
                  "cost more than either branch alone (#4402, #4059): measured against the segments before use")


@dataclass(frozen=True)
class BuildPlan:
    """What the builder will do on this TensorRT version, decided before touching TensorRT."""

    version: Version
    precision: str               # fp32 | fp16: what the engine computes in
    precision_mode: str          # MODE_*: how that precision is obtained
    graph_precision: str         # which of the artifact's ONNX graphs is parsed
    explicit_batch_flag: bool
    strongly_typed_flag: bool
    fp16_flag: bool              # BuilderFlag.FP16 (8.5-9.x), with the exit head pinned to FP32
    optimization_level: Optional[int]  # None: this TensorRT has no such setting (recorded as unused)
    dla_core: Optional[int]      # None: GPU only
    gpu_fallback: Optional[bool]  # None: not applicable (no DLA)
    notes: Tuple[str, ...] = ()
    profile_sharing: Optional[str] = None  # see profile_sharing()
    tf32: bool = False            # TF32 left on (False: the builder's default TF32 flag is cleared)
    int8_flag: bool = False       # BuilderFlag.INT8 (8.5-9.x): the Q/DQ graph's layers in INT8


def plan_build(v: Version, precision: str, optimization_level: int, dla_core: int = -1,
               gpu_fallback: bool = False, tf32: bool = False) -> BuildPlan:
    """The version-dependent choices for one engine build (pure)."""
    check_supported(v)
    check_precision(precision, "TensorRT precision")
    notes = []
    if not known_version(v):
        notes.append(f"TensorRT {version_string(v)} is newer than {NEWEST_KNOWN_MAJOR}.x: built with the "
                     f"{NEWEST_KNOWN_MAJOR}.x rules")
    typed = strongly_typed_only(v) or (v[0] >= 10 and precision != "fp32")
    int8_flag = precision == "int8" and not typed
    if typed:
        mode, graph, fp16_flag = MODE_STRONGLY_TYPED, precision, False
    elif int8_flag:
        mode, graph, fp16_flag = MODE_BUILDER_FLAG, precision, False
    elif precision == "fp16":
        mode, graph, fp16_flag = MODE_BUILDER_FLAG, "fp32", True
    else:
        mode, graph, fp16_flag = MODE_DEFAULT, "fp32", False
    level: Optional[int] = optimization_level
    if not has_optimization_level(v):
        level = None
        notes.append(f"builder_optimization_level {optimization_level} not applied: TensorRT "
                     f"{version_string(v)} has no such setting (8.6+)")
    dla: Optional[int] = None
    fallback: Optional[bool] = None
    if dla_core >= 0:
        if precision == "fp32":
            raise EdgeBranchyError("the DLA runs FP16 or INT8 only: set precision = \"fp16\" (or \"int8\") to build "
                                   f"for DLA core {dla_core}, or dla_core = -1 for the GPU")
        dla, fallback = dla_core, bool(gpu_fallback)
    return BuildPlan(version=v, precision=precision, precision_mode=mode, graph_precision=graph,
                     explicit_batch_flag=explicit_batch_flag_needed(v), strongly_typed_flag=typed,
                     fp16_flag=fp16_flag, optimization_level=level, dla_core=dla, gpu_fallback=fallback,
                     notes=tuple(notes), profile_sharing=profile_sharing(v), tf32=bool(tf32), int8_flag=int8_flag)


def extra_numpy_dtypes(trt: Any, v: Version) -> dict:
    """TensorRT data types beyond `device.numpy_dtypes` that this version has: INT64 from 10.0 (the single
    graph's int64 outputs)."""
    import numpy as np

    return {trt.DataType.INT64: np.dtype(np.int64)} if v[0] >= 10 else {}


def gpu_plan(plan: BuildPlan) -> BuildPlan:
    """The plan for an engine that only moves data (a gather): on the GPU, no precision flag, same sharing."""
    return dataclasses.replace(plan, dla_core=None, gpu_fallback=None, fp16_flag=False, int8_flag=False)


# ---------------------------------------------------------------- the only version-gated TensorRT calls

def network_flags(trt: Any, plan: BuildPlan) -> int:
    """Flags for `builder.create_network`."""
    flags = 0
    if plan.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed_flag:  # planned from 10.0 only, where the flag exists
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def gather_network_flags(trt: Any, v: Version) -> int:
    """Flags for a network built through the API (the gather engines): explicit batch on 8.x, strongly typed
    from 10 (the features' own type, FP16 included, passes through unchanged)."""
    if explicit_batch_flag_needed(v):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def pin_exit_head(trt: Any, network: Any, config: Any, plan: BuildPlan) -> list:
    """With BuilderFlag.FP16 (8.5-9.x): pin every layer computed from the logits (the entropy: the exit
    decision) to FP32 with OBEY_PRECISION_CONSTRAINTS (NvInfer.h 8.5 ILayer::setPrecision / setOutputType), and
    the constants only they read; returns the pinned layers' names. A no-op on other plans."""
    if not plan.fp16_flag:
        return []
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    reached, pinned = {HEAD_SOURCE}, []
    for layer in layers:  # a network's layers are in topological order
        ins = [tensor for tensor in (layer.get_input(j) for j in range(layer.num_inputs)) if tensor is not None]
        if any(tensor.name in reached for tensor in ins):
            pinned.append(layer)
            reached |= {layer.get_output(j).name for j in range(layer.num_outputs)}
    readers: dict = {}
    for layer in layers:
        for tensor in (layer.get_input(j) for j in range(layer.num_inputs)):
            if tensor is not None:
                readers.setdefault(tensor.name, []).append(layer)
    for layer in layers:  # constants (no tensor inputs) read by pinned layers only
        outs = [layer.get_output(j).name for j in range(layer.num_outputs)]
        if layer not in pinned and not any(layer.get_input(j) is not None for j in range(layer.num_inputs)) \
                and outs and all(readers.get(o) and all(r in pinned for r in readers[o]) for o in outs):
            pinned.append(layer)
    floats = [layer for layer in pinned
              if all(layer.get_output(j).dtype == trt.DataType.FLOAT for j in range(layer.num_outputs))]
    for layer in floats:
        layer.precision = trt.DataType.FLOAT
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.DataType.FLOAT)
    if floats:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)  # no silent FP16 fallback
    return [layer.name for layer in floats]


def configure(trt: Any, builder: Any, config: Any, plan: BuildPlan, workspace_bytes: int) -> None:
    """Apply the plan's settings to a builder config."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if not plan.tf32:  # on by default (NvInfer.h 8.5-11.1): "fp32" would run TF32 on Ampere+ and Orin
        config.clear_flag(trt.BuilderFlag.TF32)
    if plan.profile_sharing == "preview-feature":  # lets the second lane's context use profile 0 (8.6/9.x)
        config.set_preview_feature(trt.PreviewFeature.PROFILE_SHARING_0806, True)
    if plan.fp16_flag:  # planned on 8.5-9.x only, where the flag exists
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8_flag:  # planned on 8.5-9.x only: the Q/DQ layers in INT8 (NvInfer.h 8.6.1 line 8773)
        config.set_flag(trt.BuilderFlag.INT8)
    if plan.optimization_level is not None:
        config.builder_optimization_level = int(plan.optimization_level)
    if plan.dla_core is not None:
        cores = int(builder.num_DLA_cores)
        if plan.dla_core >= cores:
            raise EdgeBranchyError(f"dla_core = {plan.dla_core}, but this device has {cores} DLA core(s)"
                                   + ("" if cores else ": set dla_core = -1"))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)
        if plan.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
