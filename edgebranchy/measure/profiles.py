"""Device profiles: `profiles/<device>.toml`, validated against a schema, and auto-detection.

A profile says how to measure power on a device (`[power]`, with the
coefficients of the CPU-time estimate in `[power.estimate]`), how to build
TensorRT engines there (`[tensorrt]`) and which runtime settings to use
(`[runtime]`). `[device.match]` holds the rules `detect_profile` uses.

Profiles are looked up in `$EDGEBRANCHY_PROFILES` when it is set, else in the
repository's `profiles/` directory.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_finite_at_least, is_int_at_least

ENV_VAR = "EDGEBRANCHY_PROFILES"
POWER_SOURCES = ("auto", "tegrastats", "ina3221", "nvml", "rapl", "estimate")
ESTIMATE_MODELS = ("utilization", "cpu_time")
ESTIMATE_SCOPES = ("process", "system")
PRECISIONS = ("fp32", "fp16", "int8")
BACKENDS = ("onnxruntime", "tensorrt", "torch")
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class MatchRules:
    """How `detect_profile` recognises the device."""

    device_tree_model: tuple[str, ...]  # substrings of /proc/device-tree/model (case-insensitive)
    machine: tuple[str, ...]  # platform.machine() values, for boards without a device tree
    requires: tuple[str, ...]  # executables that must be on PATH for a machine match


@dataclass(frozen=True)
class EstimateConfig:
    """Coefficients of the CPU-time power estimate (see measure/power/estimate.py)."""

    model: str
    p_idle_w: float
    p_max_w: float | None
    p_active_core_w: float | None
    p_idle_core_w: float | None
    scope: str
    source: str  # where the numbers come from


@dataclass(frozen=True)
class PowerConfig:
    source: str
    total_rail: str | None  # None: the Jetson rule; "sum": sum of rails; else a rail name
    interval_ms: int
    estimate: EstimateConfig


@dataclass(frozen=True)
class TensorRTConfig:
    precision: str
    workspace_mb: int
    builder_optimization_level: int
    max_batch: int
    dla_core: int  # -1: no DLA
    gpu_fallback: bool


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str
    intra_op_threads: int  # 0: the library's default
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
    tensorrt: TensorRTConfig
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
    if not is_finite_at_least(v, 0):
        raise _Bad("must be a number of watts >= 0")
    return float(v)


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
    },
    "power": {
        "source": (_choice(*POWER_SOURCES), _REQUIRED),
        "total_rail": (_string, None),
        "interval_ms": (_integer(10), 100),
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
    "tensorrt": {
        "precision": (_choice(*PRECISIONS), _REQUIRED),
        "workspace_mb": (_integer(1), _REQUIRED),
        "builder_optimization_level": (_integer(0, 5), _REQUIRED),
        "max_batch": (_integer(1), _REQUIRED),
        "dla_core": (_integer(-1), _REQUIRED),
        "gpu_fallback": (_boolean, _REQUIRED),
    },
    "runtime": {
        "backend": (_choice(*BACKENDS), _REQUIRED),
        "intra_op_threads": (_integer(0), _REQUIRED),
        "allow_spinning": (_boolean, _REQUIRED),
        "graph_optimization": (_choice(*GRAPH_OPTIMIZATIONS), _REQUIRED),
        "execution_mode": (_choice(*EXECUTION_MODES), _REQUIRED),
        "batch_size": (_integer(1), _REQUIRED),
    },
}


def _display(path: Path) -> str:
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
    where = _display(path)
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
    trt = _check_section(doc, "tensorrt", where)
    runtime = _check_section(doc, "runtime", where)
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
        tensorrt=TensorRTConfig(**trt),
        runtime=RuntimeConfig(**runtime),
    )


# ---------------------------------------------------------------- lookup

def profiles_dir() -> Path:
    """Where profiles live: $EDGEBRANCHY_PROFILES, else the repository's profiles/."""
    env = os.environ.get(ENV_VAR)
    if env:
        d = Path(env)
        if not d.is_dir():
            raise EdgeBranchyError(f"{ENV_VAR}={env} is not a directory")
        return d
    d = Path(__file__).resolve().parents[2] / "profiles"
    if not d.is_dir():
        raise EdgeBranchyError(f"no profiles directory at {d}; set {ENV_VAR} to one")
    return d


def list_profiles(directory: str | Path | None = None) -> list[str]:
    """Names of the profiles in `directory` (default: `profiles_dir()`), sorted."""
    d = Path(directory) if directory is not None else profiles_dir()
    return sorted(p.stem for p in d.glob("*.toml"))


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EdgeBranchyError(f"cannot read profile {_display(path)}: {e}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise EdgeBranchyError(f"{_display(path)}: not valid TOML: {e}") from None


def load_profile(name_or_path: str | os.PathLike, directory: str | Path | None = None) -> Profile:
    """Load and validate a profile given by name (`jetson-nano`) or by path to a .toml file."""
    spec = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or "/" in spec or os.sep in spec or spec.endswith(".toml"):
        path = Path(spec)
        if not path.is_file():
            raise EdgeBranchyError(f"profile file not found: {spec}")
    else:
        d = Path(directory) if directory is not None else profiles_dir()
        path = d / f"{spec}.toml"
        if not path.is_file():
            known = ", ".join(list_profiles(d)) or "(none)"
            raise EdgeBranchyError(f"unknown profile {spec!r}; known profiles: {known} (or give a path to a .toml file)")
    return validate_profile(_read_toml(path), path)


# ---------------------------------------------------------------- detection

def _read_model(device_tree_model: str | Path, cpuinfo: str | Path) -> tuple[str | None, str]:
    """The board's model string and where it came from."""
    try:
        text = Path(device_tree_model).read_bytes().decode("utf-8", "replace").replace("\x00", "").strip()
        if text:
            return text, str(device_tree_model)
    except OSError:
        pass
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model" and value.strip():  # Raspberry Pi kernels print the board here
                return value.strip(), f"{cpuinfo} Model"
    except OSError:
        pass
    return None, str(device_tree_model)


def detect_profile(
    device_tree_model: str | Path = "/proc/device-tree/model",
    cpuinfo: str | Path = "/proc/cpuinfo",
    machine: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    directory: str | Path | None = None,
) -> tuple[str, str]:
    """The profile that fits this machine (for `--profile auto`) and a sentence saying why.

    Board model (device tree, or the Raspberry Pi `Model` line of cpuinfo)
    first: the profile with the longest matching substring wins. Otherwise the
    CPU architecture, preferring the profile whose required tools (e.g.
    nvidia-smi) are all present and most numerous.
    """
    from edgebranchy.measure.environment import cpu_model

    d = Path(directory) if directory is not None else profiles_dir()
    profiles = [load_profile(n, d) for n in list_profiles(d)]
    model, model_from = _read_model(device_tree_model, cpuinfo)
    if model:
        best: tuple[int, str, str] | None = None
        for p in profiles:
            for sub in p.match.device_tree_model:
                if sub.lower() in model.lower() and (best is None or len(sub) > best[0]):
                    best = (len(sub), p.name, sub)
        if best is not None:
            return best[1], f"board model {model!r} (from {model_from}) contains {best[2]!r}"
    arch = machine if machine is not None else platform.machine()
    cpu = cpu_model(cpuinfo)
    seen = f"board model {model!r}" if model else f"no board model ({model_from} unreadable)"
    candidates = []
    tools: dict[str, str | None] = {}
    for p in profiles:
        if arch.lower() not in (m.lower() for m in p.match.machine):
            continue
        for tool in p.match.requires:
            if tool not in tools:
                tools[tool] = which(tool)
        if all(tools[t] for t in p.match.requires):
            candidates.append((len(p.match.requires), p.name))
    notes = "; ".join(f"{t} {'at ' + str(w) if w else 'not found'}" for t, w in sorted(tools.items()))
    if not candidates:
        raise EdgeBranchyError(
            f"no profile matches this machine ({seen}, machine {arch!r}, CPU {cpu!r}); "
            f"pass --profile NAME, one of: {', '.join(p.name for p in profiles)}"
        )
    candidates.sort(key=lambda c: (-c[0], c[1]))
    name = candidates[0][1]
    reason = f"{seen}; machine {arch!r}, CPU {cpu!r}" + (f"; {notes}" if notes else "")
    return name, reason


def resolve_profile(spec: str, **detect_options: Any) -> tuple[Profile, str]:
    """A profile from `--profile` (a name, a path, or "auto") and a sentence saying how it was chosen."""
    if spec == "auto":
        name, why = detect_profile(**detect_options)
        return load_profile(name, detect_options.get("directory")), f"auto-detected {name}: {why}"
    profile = load_profile(spec)
    return profile, f"chosen with --profile {spec}"
