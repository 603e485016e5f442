"""A power *estimate* from CPU time (psutil), for devices with no power sensor.

Two models, coefficients from the device profile's `[power.estimate]`:

- "utilization": P = P_idle + (P_max - P_idle) * u, with u the average CPU
  utilisation of the window (busy CPU seconds / (seconds * logical cores)),
  so E = P_idle * t + (P_max - P_idle) * cpu_seconds / cores.
- "cpu_time": E = P_idle * t + (P_active_core - P_idle_core) * cpu_seconds.

`scope` "process" counts this process's CPU time (the work the bench causes);
"system" counts every process's. Only CPU work is modelled: GPU, memory and
peripherals are not. Every reading is labelled kind "estimated".
"""
from __future__ import annotations

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_finite_at_least, is_int_at_least
from edgebranchy.measure.power.config import MeterProfile
from edgebranchy.measure.power.meter import EnergyReading, PowerMeter, Provenance

MODELS = ("utilization", "cpu_time")
SCOPES = ("process", "system")


def _watts(name: str, value: object) -> float:
    if not is_finite_at_least(value, 0):
        raise EdgeBranchyError(f"power estimate coefficient {name} must be a number >= 0 W, got {value!r}")
    return float(value)


def cpu_seconds(scope: str = "process") -> float:
    """Busy CPU seconds so far: of this process (user + system) or of the whole system."""
    import psutil

    if scope == "process":
        t = psutil.Process().cpu_times()
        return float(t.user + t.system)
    if scope == "system":
        fields = psutil.cpu_times()._asdict()
        # guest time is already inside user/nice on Linux; idle, iowait and steal
        # (time the hypervisor gave to other guests) are not work done here
        not_busy = ("guest", "guest_nice", "idle", "iowait", "steal")
        return float(sum(v for k, v in fields.items() if k not in not_busy))
    raise EdgeBranchyError(f"estimate scope must be one of {SCOPES}, got {scope!r}")


class EstimateMeter(PowerMeter):
    """Energy estimated from CPU time with a linear power model (kind "estimated")."""

    name = "estimate"
    kind = "estimated"

    def __init__(
        self,
        p_idle_w: float,
        *,
        model: str = "utilization",
        p_max_w: float | None = None,
        p_active_core_w: float | None = None,
        p_idle_core_w: float | None = None,
        scope: str = "process",
        cores: int | None = None,
        coefficients_source: str = "",
    ) -> None:
        if model not in MODELS:
            raise EdgeBranchyError(f"estimate model must be one of {MODELS}, got {model!r}")
        if scope not in SCOPES:
            raise EdgeBranchyError(f"estimate scope must be one of {SCOPES}, got {scope!r}")
        self.model = model
        self.scope = scope
        self.p_idle_w = _watts("p_idle_w", p_idle_w)
        if model == "utilization":
            if p_max_w is None:
                raise EdgeBranchyError("the utilization estimate needs p_max_w")
            self.p_max_w = _watts("p_max_w", p_max_w)
            self.dynamic_w = self.p_max_w - self.p_idle_w
        else:
            if p_active_core_w is None or p_idle_core_w is None:
                raise EdgeBranchyError("the cpu_time estimate needs p_active_core_w and p_idle_core_w")
            self.p_active_core_w = _watts("p_active_core_w", p_active_core_w)
            self.p_idle_core_w = _watts("p_idle_core_w", p_idle_core_w)
            self.dynamic_w = self.p_active_core_w - self.p_idle_core_w
        if self.dynamic_w < 0:
            raise EdgeBranchyError("power estimate: active power must not be below idle power")
        if cores is None:
            import psutil

            cores = psutil.cpu_count(logical=True) or 1
        if not is_int_at_least(cores, 1):
            raise EdgeBranchyError(f"estimate cores must be an integer >= 1, got {cores!r}")
        self.cores = cores
        self.coefficients_source = coefficients_source
        self._cpu0: float | None = None

    @classmethod
    def from_profile(cls, profile: MeterProfile, scope: str | None = None) -> "EstimateMeter":
        """The estimate with the coefficients of a device profile's [power.estimate]."""
        est = profile.power.estimate
        return cls(
            est.p_idle_w,
            model=est.model,
            p_max_w=est.p_max_w,
            p_active_core_w=est.p_active_core_w,
            p_idle_core_w=est.p_idle_core_w,
            scope=scope or est.scope,
            coefficients_source=f"profile {profile.name}: {est.source}",
        )

    @classmethod
    def available(cls, **coefficients) -> tuple[bool, str]:
        """Whether psutil is importable and the coefficients form a valid model."""
        try:
            import psutil  # noqa: F401
        except ImportError:
            return False, "psutil is not installed"
        try:
            meter = cls(**coefficients)
        except (EdgeBranchyError, TypeError) as e:
            return False, str(e)
        return True, meter.summary()

    def summary(self) -> str:
        """The model in one line, e.g. 'utilization model: P = 4.40 + 3.46*u W (scope process)'."""
        if self.model == "utilization":
            text = f"utilization model: P = {self.p_idle_w:.2f} + {self.dynamic_w:.2f}*u W over {self.cores} cores"
        else:
            text = (
                f"cpu_time model: E = {self.p_idle_w:.2f} W*t + {self.dynamic_w:.2f} W*cpu_seconds"
            )
        text += f" (scope {self.scope})"
        return f"{text}; coefficients: {self.coefficients_source}" if self.coefficients_source else text

    def provenance(self) -> Provenance:
        # CPU time advances in clock ticks (USER_HZ, 100 per second on Linux): the model's resolution
        import os

        try:
            tick = 1.0 / os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            tick = 0.01
        return Provenance("estimate", f"estimate: {self.summary()}", "model", tick, None)

    def describe(self) -> dict:
        return {"source": self.name, "kind": self.kind, "provenance": self.provenance().to_dict(),
                "model": self.model, "scope": self.scope,
                "cores": self.cores, "summary": self.summary()}

    def energy(self, seconds: float, busy_cpu_seconds: float) -> float:
        """Estimated joules for a window of `seconds` with `busy_cpu_seconds` of CPU work."""
        busy = max(0.0, busy_cpu_seconds)
        if self.model == "utilization":
            u = min(1.0, busy / (seconds * self.cores)) if seconds > 0 else 0.0  # clock-tick noise can exceed 1
            return (self.p_idle_w + self.dynamic_w * u) * seconds
        return self.p_idle_w * seconds + self.dynamic_w * busy

    def start(self) -> None:
        cpu0 = cpu_seconds(self.scope)
        self._open_window()
        self._cpu0 = cpu0

    def stop(self) -> EnergyReading:
        t0, t1 = self._close_window()
        cpu1 = cpu_seconds(self.scope)
        cpu0, self._cpu0 = self._cpu0, None
        if cpu0 is None:
            raise EdgeBranchyError("estimate: stop() without a start reading")
        seconds = t1 - t0
        return self._reading(self.energy(seconds, cpu1 - cpu0), seconds, 2)
