"""The `[tensorrt]` table of a device profile, validated once into a typed `TensorRTSettings`.

The profile schema (`device/profile_schema.py`), `edgebranchy build`
and `build_engines` all go through `TensorRTSettings.from_table`, so a setting
is accepted or refused the same way everywhere. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.vocab import check_precision as _check_precision
REQUIRED = ("precision", "workspace_mb", "builder_optimization_level", "max_batch", "dla_core", "gpu_fallback")
#: optional keys and their defaults: opt_batch None = the profile's typical batch ([runtime].batch_size, else 1);
#: tf32 false: "fp32" engines really compute in FP32 (TensorRT enables TF32 by default on Ampere+, Orin too)
OPTIONAL = {"opt_batch": None, "tf32": False}
SETTINGS_KEYS = REQUIRED + tuple(OPTIONAL)
MAX_BATCH_LIMIT = 4096       # as [runtime].batch_size: far above what an edge engine is built for
MAX_WORKSPACE_MB = 262_144  # 256 GiB: more than any Jetson or data-centre GPU has
MAX_DLA_CORE = 7            # a sanity bound (-1: none); the build checks the count the device reports (Orin: 2)


def check_precision(value: Any, where: str = "[tensorrt].precision") -> str:
    """The precision rule (edgebranchy/vocab.py) for TensorRT builds and engine selection, named as the profile names it."""
    return _check_precision(value, where)


@dataclass(frozen=True)
class TensorRTSettings:
    """The validated `[tensorrt]` table of a device profile."""

    precision: str
    workspace_mb: int
    builder_optimization_level: int
    max_batch: int
    dla_core: int      # -1: GPU
    gpu_fallback: bool
    opt_batch: int = 1  # the batch the kernels are tuned for (profile kOPT)
    tf32: bool = False

    @classmethod
    def from_table(cls, table: Any, where: str = "[tensorrt]", typical_batch: int = 1) -> "TensorRTSettings":
        """Validate a `[tensorrt]` table (dict); `typical_batch` is the default opt_batch (clamped to max_batch)."""
        if not isinstance(table, dict):
            raise EdgeBranchyError(f"{where}: TensorRT settings must be a table/dict, got {type(table).__name__}")
        s = dict(table)
        unknown = sorted(set(s) - set(SETTINGS_KEYS))
        if unknown:
            raise EdgeBranchyError(f"{where}: unknown [tensorrt] setting {unknown[0]!r} "
                                   f"(known: {', '.join(SETTINGS_KEYS)})")
        missing = [k for k in REQUIRED if k not in s]
        if missing:
            raise EdgeBranchyError(f"{where}: [tensorrt].{missing[0]} is missing (needed: {', '.join(REQUIRED)})")
        check_precision(s["precision"], f"{where}: [tensorrt].precision" if where != "[tensorrt]" else where + ".precision")
        for key in ("gpu_fallback", "tf32"):
            if key in s and not isinstance(s[key], bool):
                raise EdgeBranchyError(f"{where}: [tensorrt].{key} must be true or false, got {s[key]!r}")
        max_batch = _int(s, "max_batch", 1, MAX_BATCH_LIMIT, where)
        if s.get("opt_batch") is None:
            opt = min(max(1, int(typical_batch)), max_batch)
        else:
            opt = _int(s, "opt_batch", 1, max_batch, where)
        return cls(precision=s["precision"], workspace_mb=_int(s, "workspace_mb", 1, MAX_WORKSPACE_MB, where),
                   builder_optimization_level=_int(s, "builder_optimization_level", 0, 5, where),
                   max_batch=max_batch, dla_core=_int(s, "dla_core", -1, MAX_DLA_CORE, where),
                   gpu_fallback=s["gpu_fallback"], opt_batch=opt, tf32=bool(s.get("tf32", False)))

    def replace(self, **changes: Any) -> "TensorRTSettings":
        """A copy with `changes` (e.g. from the command line), validated again; opt_batch is clamped to a
        smaller max_batch unless given."""
        d = {**dataclasses.asdict(self), **changes}
        if "opt_batch" not in changes and d["opt_batch"] > d["max_batch"]:
            d["opt_batch"] = d["max_batch"]
        return TensorRTSettings.from_table(d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _int(s: dict, key: str, lo: int, hi: Optional[int], where: str) -> int:
    v = s[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rule = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        prefix = "" if where == "[tensorrt]" else f"{where}: "
        raise EdgeBranchyError(f"{prefix}[tensorrt].{key} must be an integer {rule}, got {v!r}")
    return v


def validate_settings(settings: Any, precision: Optional[str] = None) -> TensorRTSettings:
    """A `TensorRTSettings` from one (returned as is) or from a `[tensorrt]` dict; `precision` (if given)
    overrides the profile's."""
    if isinstance(settings, TensorRTSettings):
        return settings if precision is None else settings.replace(precision=precision)
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        settings = dataclasses.asdict(settings)
    if not isinstance(settings, dict):
        raise EdgeBranchyError(f"TensorRT settings must be a table/dict, got {type(settings).__name__}")
    s = dict(settings)
    if precision is not None:
        s["precision"] = precision
    return TensorRTSettings.from_table(s)

