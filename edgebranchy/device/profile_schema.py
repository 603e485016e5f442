"""Device profiles: the types of a validated `profiles/<device>.toml` and the schema that checks one.

A profile says how to measure power on a device (`[power]`, with the
coefficients of the CPU-time estimate in `[power.estimate]`; the types are the
meters' own, `measure/power/config.py`), how to build TensorRT engines there
(`[tensorrt]`, validated by `tensorrt/settings.py`) and which runtime settings
to use (`[runtime]`). `[device.match]` holds the rules `device.detection` uses.
Finding and reading the files: `device.profile_loading`.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.config import EstimateConfig, PowerConfig
from edgebranchy.tensorrt.settings import TensorRTSettings
from edgebranchy.util.checks import is_finite_at_least, is_int_at_least
from edgebranchy.vocab import BACKEND_NAMES

POWER_SOURCES = ("auto", "tegrastats", "ina3221", "nvml", "rapl", "estimate")
ESTIMATE_MODELS = ("utilization", "cpu_time")
ESTIMATE_SCOPES = ("process", "system")
BACKENDS = BACKEND_NAMES
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")

# Bounds on every number of a profile: a typo (an extra zero, ms for s) must be an
# error at load time, not a bench that runs out of memory minutes later.
THREADS_PER_CORE = 4     # intra_op_threads <= 4 x os.cpu_count() (at least MIN_THREAD_CAP)
MIN_THREAD_CAP = 16      # so a profile for a bigger board still validates on a small machine
MAX_BATCH = 4096         # runtime.batch_size and tensorrt.max_batch
MAX_INTERVAL_MS = 10_000  # power sampling interval; sensors update at ~10 Hz, windows last seconds
MAX_WATTS = 1000.0       # a workstation with a GPU; edge boards are 1-150 W


@dataclass(frozen=True)
class MatchRules:
    """How `detect_profile` recognises the device."""

    device_tree_model: tuple[str, ...]  # substrings of /proc/device-tree/model (case-insensitive)
    machine: tuple[str, ...]  # platform.machine() values, for boards without a device tree
    requires: tuple[str, ...]  # executables that must be on PATH for a machine match
    system: tuple[str, ...] = ()  # platform.system() values ("Linux", "Darwin"); empty: any


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str
    intra_op_threads: int  # 0: the CPUs this process may use (util/cpus.py)
    allow_spinning: bool
    graph_optimization: str
    execution_mode: str
    batch_size: int


@dataclass(frozen=True)
class Profile:
    """A validated device profile."""

    name: str
    description: str
    path: Path
    match: MatchRules
    power: PowerConfig
    tensorrt: TensorRTSettings
    runtime: RuntimeConfig

    def to_dict(self) -> dict:
        """A JSON-ready dict of every setting (for results files)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["match"] = {k: list(v) for k, v in d["match"].items()}
        return d


# ---------------------------------------------------------------- schema

class _Bad(Exception):
    """A value that breaks its rule; the message says what the rule is."""


def _string(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad("must be a non-empty string")
    return v


def _name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise _Bad("must be a lower-case name of letters, digits, '.', '_' or '-'")
    return v


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise _Bad("must be one of " + ", ".join(repr(o) for o in options))
        return v
    return check


def _integer(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if not is_int_at_least(v, lo, hi):
            raise _Bad(f"must be an integer >= {lo}" if hi is None else f"must be an integer from {lo} to {hi}")
        return v
    return check


def _watts(v: Any) -> float:
    if not is_finite_at_least(v, 0) or v > MAX_WATTS:
        raise _Bad(f"must be a number of watts from 0 to {MAX_WATTS:g}")
    return float(v)


def max_threads() -> int:
    """The most intra-op threads a profile may ask for on this machine."""
    return max(MIN_THREAD_CAP, THREADS_PER_CORE * (os.cpu_count() or 1))


def _threads(v: Any) -> int:
    hi = max_threads()
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise _Bad(f"must be an integer from 0 (the CPUs this process may use) to {hi} "
                   f"({THREADS_PER_CORE} x the {os.cpu_count() or 1} CPUs here, at least {MIN_THREAD_CAP})")
    return v


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("must be true or false")
    return v


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
        raise _Bad("must be a list of non-empty strings")
    return tuple(v)


_REQUIRED = object()

#: section -> key -> (check, default or _REQUIRED)
SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "device": {"name": (_name, _REQUIRED), "description": (_string, _REQUIRED)},
    "device.match": {
        "device_tree_model": (_strings, ()),
        "machine": (_strings, ()),
        "requires": (_strings, ()),
        "system": (_strings, ()),
    },
    "power": {
        "source": (_choice(*POWER_SOURCES), _REQUIRED),
        "total_rail": (_string, None),
        "interval_ms": (_integer(10, MAX_INTERVAL_MS), 100),
    },
    "power.estimate": {
        "model": (_choice(*ESTIMATE_MODELS), _REQUIRED),
        "p_idle_w": (_watts, _REQUIRED),
        "p_max_w": (_watts, None),
        "p_active_core_w": (_watts, None),
        "p_idle_core_w": (_watts, None),
        "scope": (_choice(*ESTIMATE_SCOPES), "process"),
        "source": (_string, _REQUIRED),
    },
    "runtime": {
        "backend": (_choice(*BACKENDS), _REQUIRED),
        "intra_op_threads": (_threads, _REQUIRED),
        "allow_spinning": (_boolean, _REQUIRED),
        "graph_optimization": (_choice(*GRAPH_OPTIMIZATIONS), _REQUIRED),
        "execution_mode": (_choice(*EXECUTION_MODES), _REQUIRED),
        "batch_size": (_integer(1, MAX_BATCH), _REQUIRED),
    },
}


def display_path(path: Path) -> str:
    """`path` relative to the working directory where it lies below it (shorter messages), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _section(doc: dict, dotted: str, where: str) -> dict:
    table: Any = doc
    for part in dotted.split("."):
        if not isinstance(table, dict) or part not in table:
            raise EdgeBranchyError(f"{where}: missing section [{dotted}]")
        table = table[part]
    if not isinstance(table, dict):
        raise EdgeBranchyError(f"{where}: [{dotted}] must be a table")
    return table


def _check_section(doc: dict, dotted: str, where: str) -> dict:
    table = _section(doc, dotted, where)
    spec = SCHEMA[dotted]
    subtables = {k.split(".")[-1] for k in SCHEMA if k.startswith(dotted + ".") and k.count(".") == dotted.count(".") + 1}
    unknown = sorted(set(table) - set(spec) - subtables)
    if unknown:
        raise EdgeBranchyError(
            f"{where}: [{dotted}] has unknown key {unknown[0]!r} (known: {', '.join(spec)})"
        )
    out = {}
    for key, (check, default) in spec.items():
        if key not in table:
            if default is _REQUIRED:
                raise EdgeBranchyError(f"{where}: [{dotted}].{key} is missing")
            out[key] = default
            continue
        try:
            out[key] = check(table[key])
        except _Bad as e:
            raise EdgeBranchyError(f"{where}: [{dotted}].{key} {e}, got {table[key]!r}") from None
    return out


def validate_profile(doc: dict, path: Path) -> Profile:
    """A Profile from a parsed TOML document; EdgeBranchyError names the file and the key."""
    where = display_path(path)
    top = sorted(set(doc) - {"device", "power", "tensorrt", "runtime"})
    if top:
        raise EdgeBranchyError(f"{where}: unknown section [{top[0]}] (known: device, power, tensorrt, runtime)")
    device = _check_section(doc, "device", where)
    match = _check_section(doc, "device.match", where)
    if not match["device_tree_model"] and not match["machine"]:
        raise EdgeBranchyError(f"{where}: [device.match] needs device_tree_model or machine rules")
    power = _check_section(doc, "power", where)
    est = _check_section(doc, "power.estimate", where)
    needs = ("p_max_w",) if est["model"] == "utilization" else ("p_active_core_w", "p_idle_core_w")
    for key in needs:
        if est[key] is None:
            raise EdgeBranchyError(f"{where}: [power.estimate].{key} is missing (model {est['model']!r} needs it)")
    if est["model"] == "utilization" and est["p_max_w"] < est["p_idle_w"]:
        raise EdgeBranchyError(f"{where}: [power.estimate].p_max_w must be >= p_idle_w")
    if est["model"] == "cpu_time" and est["p_active_core_w"] < est["p_idle_core_w"]:
        raise EdgeBranchyError(f"{where}: [power.estimate].p_active_core_w must be >= p_idle_core_w")
    runtime = _check_section(doc, "runtime", where)
    trt = TensorRTSettings.from_table(_section(doc, "tensorrt", where), where, typical_batch=runtime["batch_size"])
    _check_across_sections(where, trt, runtime)
    return Profile(
        name=device["name"],
        description=device["description"],
        path=path,
        match=MatchRules(**match),
        power=PowerConfig(
            source=power["source"],
            total_rail=power["total_rail"],
            interval_ms=power["interval_ms"],
            estimate=EstimateConfig(**est),
        ),
        tensorrt=trt,
        runtime=RuntimeConfig(**runtime),
    )


def _check_across_sections(where: str, trt: TensorRTSettings, runtime: dict) -> None:
    """Rules between keys of different sections (each key's own bounds are in SCHEMA)."""
    if runtime["backend"] == "tensorrt" and runtime["batch_size"] > trt.max_batch:
        raise EdgeBranchyError(
            f"{where}: [runtime].batch_size {runtime['batch_size']} is above [tensorrt].max_batch "
            f"{trt.max_batch}: engines built from this profile could not run it"
        )
