"""Run conditions read before and after every trial: power mode, clocks, governor, temperatures, fan.

Every source is optional (a laptop has no nvpmodel, a container may hide
/sys/class/thermal) and every root is injectable so tests can use fake trees
and fake tools. Shapes, and where they come from:

- `nvpmodel -q` (L4T "Power Management" docs): a line `NV Power Mode: MAXN`
  then the mode id on its own line (parsed by `environment.jetson_power_mode`).
- `jetson_clocks --show` (the L4T r32-r36 `jetson_clocks` script, `show`
  branch): `cpuN: Online=1 Governor=schedutil MinFreq=... MaxFreq=...
  CurrentFreq=...` (kHz), `GPU MinFreq=... MaxFreq=... CurrentFreq=...` (Hz),
  `EMC MinFreq=... MaxFreq=... CurrentFreq=... FreqOverride=0|1` (Hz),
  `NV Power Mode: ...`. Clocks count as locked when every online CPU and the
  GPU have MinFreq == MaxFreq and EMC (where shown) has FreqOverride=1: that
  is what `jetson_clocks` without arguments sets.
- CPU clocks (kernel Documentation/admin-guide/pm/cpufreq.rst):
  `sys/devices/system/cpu/cpuN/cpufreq/scaling_{cur,min,max}_freq` (kHz) and
  `scaling_governor`.
- GPU clocks (kernel Documentation/ABI/testing/sysfs-class-devfreq):
  `sys/class/devfreq/*/{cur,min,max}_freq` (Hz); the Jetson iGPU is the
  device named gpu, gv11b, gp10b or ga10b (the names jetson_clocks matches).
- Thermal zones (kernel Documentation/driver-api/thermal/sysfs-api.rst):
  `sys/class/thermal/thermal_zoneN/{type,temp}` (millidegree C) and
  `trip_point_K_{temp,type}`, type one of active, passive, hot, critical.
- Fans (kernel Documentation/hwmon/sysfs-interface.rst): `sys/class/hwmon/
  hwmonN/{name,pwmK,fanK_input}` (PWM 0-255, rpm); the Jetson tachometer
  driver also exposes `rpm`.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgebranchy.measure.environment import jetson_power_mode

GPU_DEVFREQ_NAMES = ("gpu", "gv11b", "gp10b", "ga10b", "gb10b")
TRIP_TYPES = ("active", "passive", "hot", "critical")
_KV = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)")


def _text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    t = _text(path)
    if t is None:
        return None
    try:
        return int(t.split()[0])
    except (ValueError, IndexError):
        return None


def _natural(p: Path) -> tuple:
    m = re.search(r"([0-9]+)$", p.name)
    return (p.name.rstrip("0123456789"), int(m.group(1)) if m else -1)


def read_cpu_clocks(root: Path) -> list[dict]:
    """Per-CPU {"cpu", "cur_khz", "min_khz", "max_khz", "governor"} from cpufreq sysfs."""
    out = []
    for d in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*"), key=_natural):
        f = d / "cpufreq"
        if not f.is_dir():
            continue
        out.append({"cpu": d.name, "cur_khz": _int(f / "scaling_cur_freq"), "min_khz": _int(f / "scaling_min_freq"),
                    "max_khz": _int(f / "scaling_max_freq"), "governor": _text(f / "scaling_governor")})
    return out


def read_devfreq(root: Path) -> list[dict]:
    """Every devfreq device as {"name", "cur_hz", "min_hz", "max_hz", "gpu"}."""
    out = []
    for d in sorted((root / "sys/class/devfreq").glob("*")):
        name = d.name
        base = name.split(".")[-1].lower()  # "17000000.ga10b" -> "ga10b"
        out.append({"name": name, "cur_hz": _int(d / "cur_freq"), "min_hz": _int(d / "min_freq"),
                    "max_hz": _int(d / "max_freq"), "gpu": base in GPU_DEVFREQ_NAMES})
    return out


def read_thermal(root: Path) -> list[dict]:
    """Every thermal zone as {"zone", "type", "temp_c", "trips": [{"temp_c", "type"}]}; unreadable temps are None."""
    zones = []
    for d in sorted((root / "sys/class/thermal").glob("thermal_zone*"), key=_natural):
        temp = _int(d / "temp")
        trips = []
        for t in sorted(d.glob("trip_point_*_temp"), key=lambda p: int(p.name.split("_")[2])):
            k = t.name.split("_")[2]
            value = _int(t)
            kind = _text(d / f"trip_point_{k}_type")
            if value is not None:
                trips.append({"temp_c": value / 1000.0, "type": kind})
        zones.append({"zone": d.name, "type": _text(d / "type"), "temp_c": None if temp is None else temp / 1000.0,
                      "trips": trips})
    return zones


def read_fans(root: Path) -> list[dict]:
    """Fans from hwmon: {"hwmon", "name", "pwm": {pwmK: 0-255}, "rpm": {...}} for devices that have either."""
    fans = []
    for d in sorted((root / "sys/class/hwmon").glob("hwmon*"), key=_natural):
        pwm = {p.name: _int(p) for p in sorted(d.glob("pwm[0-9]")) if p.is_file()}
        rpm = {p.name: _int(p) for p in sorted(d.glob("fan[0-9]_input"))}
        if (d / "rpm").is_file():
            rpm["rpm"] = _int(d / "rpm")
        if pwm or rpm:
            fans.append({"hwmon": d.name, "name": _text(d / "name"), "pwm": pwm, "rpm": rpm})
    return fans


def parse_jetson_clocks_show(text: str) -> dict:
    """The `jetson_clocks --show` report as {"cpus": [...], "gpu", "emc", "power_mode", "locked"}."""
    cpus, gpu, emc, mode = [], None, None, None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("NV Power Mode:"):
            mode = line.split(":", 1)[1].strip()
            continue
        head, _, rest = line.partition(" ")
        fields = {k.strip(): v for k, v in _KV.findall(line)}
        ints = {k: int(v) for k, v in fields.items() if v.isdigit()}
        if re.fullmatch(r"cpu[0-9]+:", head):
            cpus.append({"cpu": head[:-1], "online": ints.get("Online"), "governor": fields.get("Governor"),
                         "min_khz": ints.get("MinFreq"), "max_khz": ints.get("MaxFreq"),
                         "cur_khz": ints.get("CurrentFreq")})
        elif head == "GPU" and "MinFreq" in ints:
            gpu = {"min_hz": ints.get("MinFreq"), "max_hz": ints.get("MaxFreq"), "cur_hz": ints.get("CurrentFreq")}
        elif head == "EMC" and "MinFreq" in ints:
            emc = {"min_hz": ints.get("MinFreq"), "max_hz": ints.get("MaxFreq"), "cur_hz": ints.get("CurrentFreq"),
                   "override": ints.get("FreqOverride")}
    online = [c for c in cpus if c["online"] != 0]
    if not online and gpu is None:
        locked = None  # nothing recognisable: say so rather than guess
    else:
        locked = (all(c["min_khz"] is not None and c["min_khz"] == c["max_khz"] for c in online)
                  and (gpu is None or (gpu["min_hz"] is not None and gpu["min_hz"] == gpu["max_hz"]))
                  and (emc is None or emc["override"] == 1))
    return {"cpus": cpus, "gpu": gpu, "emc": emc, "power_mode": mode, "locked": locked}


@dataclass
class ConditionsReader:
    """Reads a snapshot of the run conditions; `root` and `which` are injectable for tests.

    `tools` False skips nvpmodel and jetson_clocks (they take tens of ms each):
    the bench runs them once at the start and reads only sysfs around trials.
    """

    root: str | Path = "/"
    which: Callable[[str], str | None] = shutil.which
    timeout_s: float = 10.0

    def jetson_clocks_show(self) -> dict | None:
        """Parsed `jetson_clocks --show`; None without the tool; {"error"} when it fails (it needs root)."""
        exe = self.which("jetson_clocks")
        if exe is None:
            return None
        try:
            r = subprocess.run([exe, "--show"], capture_output=True, text=True, timeout=self.timeout_s)
        except (OSError, subprocess.SubprocessError) as e:
            return {"error": f"jetson_clocks --show failed: {e}"}
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            return {"error": f"jetson_clocks --show exited {r.returncode}: {msg[-1] if msg else ''} (needs root)"}
        return parse_jetson_clocks_show(r.stdout)

    def read(self, tools: bool = True) -> dict:
        """One JSON-ready snapshot: wall and monotonic time, clocks, governor, zones, fans (and the tools)."""
        root = Path(self.root)
        cpus = read_cpu_clocks(root)
        devfreq = read_devfreq(root)
        governors = sorted({c["governor"] for c in cpus if c["governor"]})
        snap = {"time": time.time(), "perf_counter": time.perf_counter(), "cpus": cpus,
                "governor": governors[0] if len(governors) == 1 else (governors or None),
                "gpu": [d for d in devfreq if d["gpu"]], "devfreq_other": [d for d in devfreq if not d["gpu"]],
                "thermal": read_thermal(root), "fans": read_fans(root)}
        if tools:
            snap["power_mode"] = jetson_power_mode(self.which)
            snap["jetson_clocks"] = self.jetson_clocks_show()
            jc = snap["jetson_clocks"]
            snap["clocks_locked"] = jc.get("locked") if isinstance(jc, dict) else None
        return snap


def summary_line(snap: dict) -> str:
    """One line for the log: power mode, locked clocks, governor, hottest zone, fan."""
    parts = []
    pm = snap.get("power_mode")
    if isinstance(pm, dict) and pm.get("name"):
        parts.append(f"power mode {pm['name']}" + (f" ({pm['id']})" if pm.get("id") is not None else ""))
    locked = snap.get("clocks_locked")
    if locked is not None:
        parts.append("clocks locked" if locked else "clocks NOT locked (jetson_clocks not applied)")
    if snap.get("governor"):
        parts.append(f"governor {snap['governor']}")
    zones = [z for z in snap.get("thermal", []) if z["temp_c"] is not None]
    if zones:
        hot = max(zones, key=lambda z: z["temp_c"])
        parts.append(f"{len(zones)} thermal zones, hottest {hot['type']} {hot['temp_c']:.1f} C")
    for fan in snap.get("fans", []):
        parts.append(f"fan {fan['name'] or fan['hwmon']} " + " ".join(f"{k}={v}" for k, v in {**fan['pwm'],
                                                                                          **fan['rpm']}.items()))
    return "; ".join(parts) if parts else "no run conditions readable here"
