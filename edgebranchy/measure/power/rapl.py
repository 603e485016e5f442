"""x86 package energy from RAPL counters in powercap sysfs.

Only top-level package domains are read (`sys/class/powercap/intel-rapl:N`
whose `name` starts with "package"); their sub-domains (`intel-rapl:N:M`:
core, uncore, dram) lie inside the package and are never added, and `psys`
is skipped. Packages (sockets) are summed. A counter that went down wrapped
at `max_energy_range_uj`; a window long enough to wrap twice cannot be told
apart (hours at typical package power).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.meter import EnergyReading, PowerMeter, Provenance

#: RAPL energy status registers update about every 1 ms (Intel SDM vol. 3B, 15.10.1)
COUNTER_UPDATE_S = 0.001

POWERCAP = "sys/class/powercap"
_TOP = re.compile(r"intel-rapl:[0-9]+")


@dataclass(frozen=True)
class RaplDomain:
    """One package domain: its directory, name and counter range."""

    name: str
    path: Path
    max_range_uj: int


def _read_int(path: Path) -> int:
    """An integer sysfs file; permission and format problems become EdgeBranchyError."""
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise EdgeBranchyError(
            f"permission denied reading {path}: RAPL counters are readable only by root on Linux >= 5.10 "
            "(run as root, or grant read access to energy_uj)"
        ) from None
    except (OSError, ValueError) as e:
        raise EdgeBranchyError(f"cannot read RAPL counter {path}: {e}") from None


def find_packages(root: str | Path = "/") -> list[RaplDomain]:
    """The RAPL package domains under `root`, one per socket."""
    base = Path(root) / POWERCAP
    domains: list[RaplDomain] = []
    seen: set[Path] = set()
    for d in sorted(base.glob("intel-rapl:*")):
        if not _TOP.fullmatch(d.name):
            continue
        try:
            real = d.resolve()
            name = (d / "name").read_text().strip()
        except OSError:
            continue
        if real in seen or not name.startswith("package"):
            continue
        seen.add(real)
        domains.append(RaplDomain(name, d, _read_int(d / "max_energy_range_uj")))
    return domains


class RaplMeter(PowerMeter):
    """CPU package energy (all sockets) from RAPL counters read at the window edges."""

    name = "rapl"
    kind = "measured"

    def __init__(self, root: str | Path = "/") -> None:
        self.root = Path(root)
        self._domains: list[RaplDomain] | None = None
        self._e0: list[int] | None = None

    @classmethod
    def available(cls, root: str | Path = "/") -> tuple[bool, str]:
        """Whether RAPL package counters exist under `root` and are readable."""
        try:
            meter = cls(root=root)
            values = meter._read_all()
        except EdgeBranchyError as e:
            return False, str(e)
        if not any(values):
            return False, ("RAPL counters read 0 uJ (not counting: a VM or a powercap stub): "
                           "this source returns no energy")
        return True, f"packages {', '.join(d.name for d in meter._domains or [])} readable"

    def provenance(self) -> Provenance:
        names = ", ".join(d.name for d in self._domains or []) or "packages"
        return Provenance("cpu-package", f"RAPL {names}: CPU packages only (no GPU, board or peripherals)",
                          "energy-counter", COUNTER_UPDATE_S, None)

    def describe(self) -> dict:
        return {
            "source": self.name,
            "kind": self.kind,
            "provenance": self.provenance().to_dict(),
            "domains": [d.name for d in self._domains] if self._domains else None,
            "scope": "CPU packages only",
        }

    def _read_all(self) -> list[int]:
        if self._domains is None:
            domains = find_packages(self.root)
            if not domains:
                raise EdgeBranchyError(
                    f"no RAPL package domains under {self.root / POWERCAP} "
                    "(not an Intel/AMD x86 host, or a VM/container without powercap)"
                )
            self._domains = domains
        return [_read_int(d.path / "energy_uj") for d in self._domains]

    def start(self) -> None:
        e0 = self._read_all()
        self._open_window()
        self._e0 = e0

    def stop(self) -> EnergyReading:
        t0, t1 = self._close_window()
        e1 = self._read_all()
        e0, self._e0 = self._e0, None
        if e0 is None or self._domains is None:
            raise EdgeBranchyError("rapl: stop() without a start reading")
        total_uj = 0
        for d, a, b in zip(self._domains, e0, e1):
            delta = b - a
            if delta < 0:
                delta += d.max_range_uj
            total_uj += delta
        return self._reading(total_uj / 1e6, t1 - t0, 2)
