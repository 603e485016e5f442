"""Choosing the power meter for a run: the one the profile (or `--power`) names, never a silent substitute.

A named source that is unavailable is an error that says why and how to pick
another, with one exception: a profile's `tegrastats` (never an explicit
`--power tegrastats`) falls back to `ina3221` when tegrastats cannot run, as in
a container (JetPack's tools are not inside it, the sysfs sensors are): the
same sensors, and the reason says so. "auto" tries, in this documented order, and records why each
rejected source was rejected:

1. tegrastats  (Jetson; run once to check it prints power rails)
2. ina3221     (Jetson sensors in sysfs, when tegrastats is absent or shows no rails)
3. nvml        (an NVIDIA GPU with nvidia-ml-py; GPU board energy only)
4. rapl        (x86 package counters, where readable)
5. estimate    (CPU-time model from the profile: always labelled "estimated")
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.config import MeterProfile
from edgebranchy.measure.power.meter import PowerMeter

SOURCES = ("tegrastats", "ina3221", "nvml", "rapl", "estimate")
AUTO_ORDER = SOURCES
CHOICES = ("auto",) + SOURCES
#: a profile's source -> the one reading the same sensors another way (tegrastats is absent in containers)
SAME_SENSORS = {"tegrastats": "ina3221"}


def meter_class(source: str) -> type[PowerMeter]:
    """The PowerMeter class of a source name (imports only that source's module)."""
    if source == "tegrastats":
        from edgebranchy.measure.power.tegrastats import TegrastatsMeter
        return TegrastatsMeter
    if source == "ina3221":
        from edgebranchy.measure.power.ina3221 import Ina3221Meter
        return Ina3221Meter
    if source == "nvml":
        from edgebranchy.measure.power.nvml import NvmlMeter
        return NvmlMeter
    if source == "rapl":
        from edgebranchy.measure.power.rapl import RaplMeter
        return RaplMeter
    if source == "estimate":
        from edgebranchy.measure.power.estimate import EstimateMeter
        return EstimateMeter
    raise EdgeBranchyError(f"unknown power source {source!r}; choose one of {', '.join(CHOICES)}")


def meter_options(
    source: str,
    profile: MeterProfile,
    *,
    sysfs_root: str | Path = "/",
    tegrastats_executable: str = "tegrastats",
    nvml_device: int = 0,
    sync: Callable[[], None] | None = None,
    gpu_pci_bus_id: str | None = None,
) -> dict:
    """Constructor options of a source for this profile (also what `available` checks); `gpu_pci_bus_id`: the GPU
    the backend runs on (NVML then measures that one, not NVML device `nvml_device`)."""
    power = profile.power
    if source == "tegrastats":
        return {"interval_ms": power.interval_ms, "executable": tegrastats_executable, "total_rail": power.total_rail}
    if source == "ina3221":
        return {"root": sysfs_root, "interval_ms": power.interval_ms, "total_rail": power.total_rail}
    if source == "nvml":
        return {"device_index": nvml_device, "sync": sync, "pci_bus_id": gpu_pci_bus_id}
    if source == "rapl":
        return {"root": sysfs_root}
    if source == "estimate":
        est = power.estimate
        return {
            "p_idle_w": est.p_idle_w,
            "model": est.model,
            "p_max_w": est.p_max_w,
            "p_active_core_w": est.p_active_core_w,
            "p_idle_core_w": est.p_idle_core_w,
            "scope": est.scope,
            "coefficients_source": f"profile {profile.name}: {est.source}",
        }
    raise EdgeBranchyError(f"unknown power source {source!r}; choose one of {', '.join(CHOICES)}")


def check_source(source: str, options: dict) -> tuple[bool, str]:
    """Whether the source can measure here with these options, and why (tegrastats: run once to see its rails)."""
    cls = meter_class(source)
    if source == "tegrastats":
        return cls.available(probe=True, **options)
    return cls.available(**options)


def select_meter(
    profile: MeterProfile,
    override: str | None = None,
    *,
    sysfs_root: str | Path = "/",
    tegrastats_executable: str = "tegrastats",
    nvml_device: int = 0,
    sync: Callable[[], None] | None = None,
    gpu_pci_bus_id: str | None = None,
) -> tuple[PowerMeter, str]:
    """The power meter for `profile` (or the `--power` override) and a sentence saying why.

    A named source that is not usable raises EdgeBranchyError; "auto" goes
    through AUTO_ORDER and the reason lists every source it rejected.
    """
    env = {"sysfs_root": sysfs_root, "tegrastats_executable": tegrastats_executable,
           "nvml_device": nvml_device, "sync": sync, "gpu_pci_bus_id": gpu_pci_bus_id}
    if override is not None:
        if override not in CHOICES:
            raise EdgeBranchyError(f"unknown power source {override!r}; choose one of {', '.join(CHOICES)}")
        source, origin = override, f"--power {override}"
        asked = f"`power` {override}"  # the errors name the setting; the CLI shows its flag
    else:
        source, origin = profile.power.source, f"profile {profile.name} [power].source"
        asked = origin

    if source != "auto":
        options = meter_options(source, profile, **env)
        ok, why = check_source(source, options)
        if not ok and override is None and source in SAME_SENSORS:
            alt = SAME_SENSORS[source]
            alt_options = meter_options(alt, profile, **env)
            alt_ok, alt_why = check_source(alt, alt_options)
            if alt_ok:
                return meter_class(alt)(**alt_options), (
                    f"{alt} instead of {source} ({origin}): {source} is not usable here ({why}; inside a "
                    f"container tegrastats is absent), {alt} reads the same sensors from sysfs: {alt_why}")
            why = f"{why}; {alt} (the same sensors in sysfs) neither: {alt_why}"
        if not ok:
            others = ", ".join(c for c in CHOICES if c != source)
            raise EdgeBranchyError(
                f"power source {source!r} ({asked}) is not available here: {why}. "
                f"Choose another with `power` ({others}); `power` estimate always works "
                "(a CPU-time estimate, labelled as such)"
            )
        return meter_class(source)(**options), f"{source} ({origin}): {why}"

    rejected = []
    for candidate in AUTO_ORDER:
        options = meter_options(candidate, profile, **env)
        ok, why = check_source(candidate, options)
        if ok:
            tried = "; ".join(rejected) if rejected else "nothing rejected"
            meter = meter_class(candidate)(**options)
            return meter, (
                f"auto ({origin}; order {' > '.join(AUTO_ORDER)}): chose {candidate} ({why}); "
                f"rejected: {tried}"
            )
        rejected.append(f"{candidate}: {why}")
    raise EdgeBranchyError(f"no power source is usable here ({asked}): " + "; ".join(rejected))


#: how the one-line power note names each source
_SOURCE_WORDS = {"estimate": "CPU-time model", "rapl": "RAPL package counters", "nvml": "NVML GPU board power",
                 "tegrastats": "tegrastats rails", "ina3221": "INA3221 rails in sysfs"}


def power_line(meter: PowerMeter, reason: str) -> str:
    """`power: estimated (CPU-time model; auto: tegrastats, ina3221, nvml, rapl not usable)`: the source and kind
    in one short line from `select_meter`'s meter and reason (the full reasoning is in the results file,
    environment.power_source_reason)."""
    what = _SOURCE_WORDS.get(meter.name, meter.name)
    if reason.startswith("auto"):
        before = list(AUTO_ORDER[:AUTO_ORDER.index(meter.name)]) if meter.name in AUTO_ORDER else []
        origin = f"auto: {', '.join(before)} not usable" if before else "auto"
    elif " instead of " in reason:
        origin = reason.split(" (", 1)[0]
    else:
        origin = reason.split(" (", 1)[1].split(")", 1)[0] if " (" in reason else reason
    return f"power: {meter.kind} ({what}; {origin})"


def source_words(source: str) -> str:
    """What a power source is, in a few words (for summaries: 'estimated (CPU-time model)')."""
    return _SOURCE_WORDS.get(source, source)
