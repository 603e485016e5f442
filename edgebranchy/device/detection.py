"""Which device profile a run uses: the one named (or given as a path), or, for "auto", the one whose
`[device.match]` rules fit this machine (board model first, else the CPU architecture and system)."""
from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Any, Callable

from edgebranchy.device.profile_loading import list_profiles, load_profile, profiles_dir
from edgebranchy.device.profile_schema import Profile
from edgebranchy.errors import EdgeBranchyError


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
            f"pass `profile` NAME, one of: {', '.join(p.name for p in profiles)}"
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
