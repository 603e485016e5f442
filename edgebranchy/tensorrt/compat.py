"""TensorRT version differences (8.5 -> 11.x), in one place.

Decisions are pure functions of a version tuple, so they are testable without
TensorRT; the two `apply` helpers at the end are the only code that touches
TensorRT names that do not exist in every supported version.

    8.5      explicit-batch network flag required; FP16 via BuilderFlag.FP16;
             no builder optimisation level (8.6+); no strongly typed networks
    10.x     explicit batch implied (flag deprecated: pass 0); FP16 via BuilderFlag.FP16
    11.x     EXPLICIT_BATCH and BuilderFlag.FP16 removed; networks are strongly
             typed: the precision comes from the graph (the artifact's fp16 graphs)

Runs on JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from edgebranchy.errors import EdgeBranchyError

Version = Tuple[int, int, int]

MIN_VERSION: Version = (8, 5, 0)
#: the newest major version whose API this module knows
NEWEST_KNOWN_MAJOR = 11

#: TensorRT names that are missing from at least one supported version. Only this
#: module may touch them, and only behind the decision named here (the static test
#: checks both).
VERSION_GATED = {
    "EXPLICIT_BATCH": "NetworkDefinitionCreationFlag member: required on 8.x, deprecated in 10, removed in 11",
    "FP16": "BuilderFlag member: removed in 11, where the precision comes from the graph",
    "STRONGLY_TYPED": "NetworkDefinitionCreationFlag member: added in 9.x, used on 11 only",
    "builder_optimization_level": "IBuilderConfig attribute: added in 8.6",
    "PROFILE_SHARING_0806": "PreviewFeature member: added in 8.6, always on (deprecated) in 10, removed in 11",
}

#: attributes this module uses on TensorRT objects (builder, builder config)
TRT_OBJECT_API = frozenset({
    "set_memory_pool_limit", "set_flag", "clear_flag", "builder_optimization_level", "default_device_type",
    "DLA_core", "num_DLA_cores", "set_preview_feature",
})

#: how the engine's precision was obtained (recorded in the manifest)
MODE_DEFAULT = "default"                  # fp32 on <= 10.x: no precision flag (TensorRT may use TF32)
MODE_BUILDER_FLAG = "builder-flag"        # fp16 on <= 10.x: BuilderFlag.FP16 on the fp32 graph
MODE_STRONGLY_TYPED = "strongly-typed-graph"  # 11.x: the graph's own types (fp16 graph for fp16)


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


def fp16_builder_flag_available(v: Version) -> bool:
    return v[0] <= 10


def has_optimization_level(v: Version) -> bool:
    return v >= (8, 6, 0)


def has_memory_pool_api(v: Version) -> bool:
    return v >= (8, 4, 0)


def profile_sharing(v: Version) -> Optional[str]:
    """How two execution contexts can share the engine's one optimisation profile (NvInfer.h
    createExecutionContext): "implicit" from 10.0, "preview-feature" (PROFILE_SHARING_0806, off by
    default) on 8.6 and 9.x, None on 8.5 (only the first context owns profile 0: one lane)."""
    if v[0] >= 10:
        return "implicit"
    return "preview-feature" if v >= (8, 6, 0) else None


@dataclass(frozen=True)
class BuildPlan:
    """What the builder will do on this TensorRT version, decided before touching TensorRT."""

    version: Version
    precision: str               # fp32 | fp16: what the engine computes in
    precision_mode: str          # MODE_*: how that precision is obtained
    graph_precision: str         # which of the artifact's ONNX graphs is parsed
    explicit_batch_flag: bool
    strongly_typed_flag: bool
    fp16_flag: bool
    optimization_level: Optional[int]  # None: this TensorRT has no such setting (recorded as unused)
    dla_core: Optional[int]      # None: GPU only
    gpu_fallback: Optional[bool]  # None: not applicable (no DLA)
    notes: Tuple[str, ...] = ()
    profile_sharing: Optional[str] = None  # see profile_sharing()
    tf32: bool = False            # TF32 left on (False: the builder's default TF32 flag is cleared)


def plan_build(v: Version, precision: str, optimization_level: int, dla_core: int = -1,
               gpu_fallback: bool = False, tf32: bool = False) -> BuildPlan:
    """The version-dependent choices for one engine build (pure)."""
    check_supported(v)
    if precision not in ("fp32", "fp16"):
        raise EdgeBranchyError(f"TensorRT precision must be fp32 or fp16, got {precision!r}"
                               + (" (INT8 needs a graph with explicit Q/DQ nodes; not supported yet)"
                                  if precision == "int8" else ""))
    notes = []
    if not known_version(v):
        notes.append(f"TensorRT {version_string(v)} is newer than {NEWEST_KNOWN_MAJOR}.x: built with the "
                     f"{NEWEST_KNOWN_MAJOR}.x rules")
    typed = strongly_typed_only(v)
    if typed:
        mode, graph, fp16_flag = MODE_STRONGLY_TYPED, precision, False
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
        if precision != "fp16":
            raise EdgeBranchyError("the DLA runs FP16 (or INT8) only: set precision = \"fp16\" to build for "
                                   f"DLA core {dla_core}, or dla_core = -1 for the GPU")
        dla, fallback = dla_core, bool(gpu_fallback)
    return BuildPlan(version=v, precision=precision, precision_mode=mode, graph_precision=graph,
                     explicit_batch_flag=explicit_batch_flag_needed(v), strongly_typed_flag=typed,
                     fp16_flag=fp16_flag, optimization_level=level, dla_core=dla, gpu_fallback=fallback,
                     notes=tuple(notes), profile_sharing=profile_sharing(v), tf32=bool(tf32))


# ---------------------------------------------------------------- the only version-gated TensorRT calls

def network_flags(trt: Any, plan: BuildPlan) -> int:
    """Flags for `builder.create_network`."""
    flags = 0
    if plan.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed_flag and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def configure(trt: Any, builder: Any, config: Any, plan: BuildPlan, workspace_bytes: int) -> None:
    """Apply the plan's settings to a builder config."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if not plan.tf32:  # on by default (NvInfer.h 8.5-11.1): "fp32" would run TF32 on Ampere+ and Orin
        config.clear_flag(trt.BuilderFlag.TF32)
    if plan.profile_sharing == "preview-feature":  # lets the second lane's context use profile 0 (8.6/9.x)
        config.set_preview_feature(trt.PreviewFeature.PROFILE_SHARING_0806, True)
    if plan.fp16_flag:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EdgeBranchyError(f"this TensorRT ({version_string(plan.version)}) has no FP16 builder flag")
        config.set_flag(trt.BuilderFlag.FP16)
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
