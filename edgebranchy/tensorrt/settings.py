"""The `[tensorrt]` table of a device profile, validated once into a typed `TensorRTSettings`.

The profile loader, `edgebranchy export --tensorrt` and `build_engines` all go
through `TensorRTSettings.from_table`, so a setting is accepted or refused the
same way everywhere. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from edgebranchy.errors import EdgeBranchyError

SETTINGS_KEYS = ("precision", "workspace_mb", "builder_optimization_level", "max_batch", "dla_core", "gpu_fallback")
@dataclass(frozen=True)
class TensorRTSettings:
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


def validate_settings(settings: Any, precision: Optional[str] = None) -> TensorRTSettings:
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
    return TensorRTSettings(precision=s["precision"], workspace_mb=_int_setting(s, "workspace_mb", 1),
                         builder_optimization_level=_int_setting(s, "builder_optimization_level", 0, 5),
                         max_batch=_int_setting(s, "max_batch", 1, 1 << 20), dla_core=_int_setting(s, "dla_core", -1),
                         gpu_fallback=s["gpu_fallback"])


BuildSettings = TensorRTSettings
