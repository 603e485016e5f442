"""Power sources behind one contract (`base.PowerMeter`), one file per source.

- `tegrastats`: the Jetson `tegrastats` tool, parsed line by line (measured)
- `ina3221`: the same Jetson sensors read from sysfs (measured)
- `nvml`: the NVIDIA GPU energy counter through nvidia-ml-py (measured, GPU board only)
- `rapl`: Intel/AMD RAPL package energy counters from powercap sysfs (measured)
- `estimate`: a CPU-time model with coefficients from the device profile (estimated)

`select.select_meter` picks one for a device profile and says why.
"""
from edgebranchy.measure.power.meter import EnergyReading, PowerMeter

SOURCES = ("tegrastats", "ina3221", "nvml", "rapl", "estimate")

__all__ = ["EnergyReading", "PowerMeter", "SOURCES"]
