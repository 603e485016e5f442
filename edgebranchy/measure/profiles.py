"""Device profiles: `profiles/<device>.toml`, validated against a schema, and auto-detection.

(Over 400 lines: schema, lookup and detection share the Profile types; one section each below.)

A profile says how to measure power on a device (`[power]`, with the
coefficients of the CPU-time estimate in `[power.estimate]`), how to build
TensorRT engines there (`[tensorrt]`) and which runtime settings to use
(`[runtime]`). `[device.match]` holds the rules `detect_profile` uses.

Profiles are looked up in `$EDGEBRANCHY_PROFILES` when it is set, else in the
copy installed with the package (`edgebranchy/profiles/`, read with
importlib.resources; the wheel maps the repository's top-level `profiles/`
there), else, in a source checkout, in the repository's `profiles/`.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_finite_at_least, is_int_at_least
from edgebranchy.tensorrt.settings import TensorRTSettings
from edgebranchy.vocab import BACKEND_NAMES

ENV_VAR = "EDGEBRANCHY_PROFILES"
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


#: the [tensorrt] table, validated by tensorrt/settings.py (the one place TensorRT settings are checked)
TensorRTConfig = TensorRTSettings


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
    if not is_finite_at_least(v, 0) or v > MAX_WATTS:
        raise _Bad(f"must be a number of watts from 0 to {MAX_WATTS:g}")
    return float(v)


def max_threads() -> int:
    """The most intra-op threads a profile may ask for on this machine."""
    return max(MIN_THREAD_CAP, THREADS_PER_CORE * (os.cpu_count() or 1))


def _threads(v: Any) -> int:
    hi = max_threads()
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise _Bad(f"must be an integer from 0 (the library's default) to {hi} "
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


# ---------------------------------------------------------------- lookup

def profiles_dir() -> Path:
    """Where profiles live: $EDGEBRANCHY_PROFILES, else the installed package's, else the checkout's."""
    env = os.environ.get(ENV_VAR)
    if env:
        d = Path(env)
        if not d.is_dir():
            raise EdgeBranchyError(f"{ENV_VAR}={env} is not a directory")
        return d
    packaged = _packaged_profiles()
    if packaged is not None:
        return packaged
    d = Path(__file__).resolve().parents[2] / "profiles"  # a source checkout (or an editable install)
    if not d.is_dir():
        raise EdgeBranchyError(f"no profiles installed with edgebranchy and none at {d}; set {ENV_VAR} to a directory")
    return d


def _packaged_profiles() -> Path | None:
    """`edgebranchy/profiles/` as installed from the wheel, or None (a source checkout has none)."""
    if sys.version_info >= (3, 9):
        from importlib.resources import files  # novermin (guarded; 3.8 takes the backport below)
    else:
        from importlib_resources import files  # a dependency on Python 3.8 only
    d = files("edgebranchy") / "profiles"
    # A wheel installs into a directory, so this is a real path; a zipped install would
    # need importlib.resources.as_file, which edgebranchy does not support.
    return Path(str(d)) if isinstance(d, Path) and d.is_dir() else None


def list_profiles(directory: str | Path | None = None) -> list[str]:
    """Names of the profiles in `directory` (default: `profiles_dir()`), sorted."""
    d = Path(directory) if directory is not None else profiles_dir()
    return sorted(p.stem for p in d.glob("*.toml"))


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib  # novermin (guarded: tomli below is the same parser for 3.8-3.10)
    else:
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
    system: str | None = None,
) -> tuple[str, str]:
    """The profile that fits this machine (for `--profile auto`) and a sentence saying why.

    Board model (device tree, or the Raspberry Pi `Model` line of cpuinfo)
    first: the profile with the longest matching substring wins. Otherwise
    (no board model, or one no profile names) the generic profile of the CPU
    architecture and operating system: among the profiles whose `machine`
    and `system` rules fit, the one whose required tools (e.g. nvidia-smi)
    are all present and most numerous, then the one that names the system.
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
    osname = system if system is not None else platform.system()
    cpu = cpu_model(cpuinfo)
    seen = (f"board model {model!r} (from {model_from}) matches no board profile" if model
            else f"no board model ({model_from} unreadable)")
    candidates = []
    tools: dict[str, str | None] = {}
    for p in profiles:
        if arch.lower() not in (m.lower() for m in p.match.machine):
            continue
        if p.match.system and osname.lower() not in (s.lower() for s in p.match.system):
            continue
        for tool in p.match.requires:
            if tool not in tools:
                tools[tool] = which(tool)
        if all(tools[t] for t in p.match.requires):
            candidates.append((len(p.match.requires), bool(p.match.system), p.name))
    notes = "; ".join(f"{t} {'at ' + str(w) if w else 'not found'}" for t, w in sorted(tools.items()))
    if not candidates:
        raise EdgeBranchyError(
            f"no profile matches this machine ({seen}, machine {arch!r}, system {osname!r}, CPU {cpu!r}); "
            f"pass --profile NAME, one of: {', '.join(p.name for p in profiles)}"
        )
    candidates.sort(key=lambda c: (-c[0], not c[1], c[2]))
    name = candidates[0][2]
    reason = (f"{seen}; generic profile for machine {arch!r}, system {osname!r}, CPU {cpu!r}"
              + (f"; {notes}" if notes else ""))
    return name, reason


def resolve_profile(spec: str, **detect_options: Any) -> tuple[Profile, str]:
    """A profile from `--profile` (a name, a path, or "auto") and a sentence saying how it was chosen."""
    if spec == "auto":
        name, why = detect_profile(**detect_options)
        return load_profile(name, detect_options.get("directory")), f"auto-detected {name}: {why}"
    profile = load_profile(spec)
    return profile, f"chosen with --profile {spec}"
