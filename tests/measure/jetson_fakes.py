"""Fake Jetson sysfs trees and tools, shaped like a Jetson AGX Orin on L4T r35 (JetPack 5).

Shapes: cpufreq files in kHz (kernel cpufreq.rst), devfreq in Hz with the iGPU
at `17000000.ga10b` (the path NVIDIA's L4T r35 docs and jetson_clocks use),
thermal zones with millidegree temperatures and trip points (kernel thermal
sysfs-api.rst; Orin zone names cpu-thermal, gpu-thermal, tj-thermal ...), the
pwm-fan hwmon (pwm1 0-255) and the tachometer's `rpm`. The fake
`jetson_clocks` prints the `--show` report in the format of the L4T r35
script and records every call; the fake `nvpmodel -q` prints the mode.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path


def orin_tree(root: Path, *, cpu_cur=2201600, cpu_max=2201600, cpu_min=729600, gpu_cur=1300500000,
              gpu_max=1300500000, gpu_min=306000000, temps=None, governor="schedutil") -> Path:
    """Write (or rewrite) an Orin-like sysfs tree under `root`; temps: {zone type: degrees C}."""
    temps = {"cpu-thermal": 48.5, "gpu-thermal": 46.0, "tj-thermal": 49.2, **(temps or {})}
    files: dict[str, str] = {}
    for i in range(4):
        d = f"sys/devices/system/cpu/cpu{i}/cpufreq"
        files.update({f"{d}/scaling_cur_freq": f"{cpu_cur}\n", f"{d}/scaling_min_freq": f"{cpu_min}\n",
                      f"{d}/scaling_max_freq": f"{cpu_max}\n", f"{d}/scaling_governor": f"{governor}\n"})
    g = "sys/class/devfreq/17000000.ga10b"
    files.update({f"{g}/cur_freq": f"{gpu_cur}\n", f"{g}/min_freq": f"{gpu_min}\n", f"{g}/max_freq": f"{gpu_max}\n"})
    for i, (name, t) in enumerate(temps.items()):
        z = f"sys/class/thermal/thermal_zone{i}"
        files.update({f"{z}/type": f"{name}\n", f"{z}/temp": f"{int(round(t * 1000))}\n",
                      f"{z}/trip_point_0_temp": "50000\n", f"{z}/trip_point_0_type": "active\n",
                      f"{z}/trip_point_1_temp": "99000\n", f"{z}/trip_point_1_type": "passive\n",
                      f"{z}/trip_point_2_temp": "104500\n", f"{z}/trip_point_2_type": "critical\n"})
    files.update({"sys/class/hwmon/hwmon3/name": "pwmfan\n", "sys/class/hwmon/hwmon3/pwm1": "77\n",
                  "sys/class/hwmon/hwmon4/name": "pwm_tach\n", "sys/class/hwmon/hwmon4/rpm": "2350\n",
                  "sys/class/hwmon/hwmon0/name": "ina3221\n"})
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


SHOW_UNLOCKED = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=1651200 IdleStates: WFI=1 c7=1
cpu1: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=729600 IdleStates: WFI=1 c7=1
GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
FAN Dynamic Speed control=active hwmon3_pwm1=77
NV Power Mode: MAXN
"""

SHOW_LOCKED = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
FAN Dynamic Speed control=active hwmon3_pwm1=255
NV Power Mode: MAXN
"""

_JETSON_CLOCKS = '''#!{python}
"""Fake jetson_clocks: records argv; --store writes a file, bare call marks clocks locked, --restore unlocks."""
import json, sys
state = {state!r}
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if {fail!r} and args[:1] == [{fail!r}]:
    sys.stderr.write("Error: fake failure\\n"); sys.exit(1)
if args[:1] == ["--show"]:
    locked = open(state).read().strip() == "locked" if __import__("os").path.exists(state) else False
    sys.stdout.write({locked!r} if locked else {unlocked!r})
elif args[:1] == ["--store"]:
    open(args[1], "w").write("/sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq:729600\\n")
elif args[:1] == ["--restore"]:
    open(args[1]).read()
    open(state, "w").write("unlocked")
elif not args:
    open(state, "w").write("locked")
'''

_NVPMODEL = '''#!{python}
import sys
if sys.argv[1:] == ["-q"]:
    print("NV Fan Mode:quiet")
    print("NV Power Mode: {mode}")
    print("{mode_id}")
else:
    sys.exit(2)
'''


def _exe(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return os.fspath(path)


def fake_tools(bin_dir: Path, *, mode: str = "MAXN", mode_id: int = 0, fail: str = "") -> Path:
    """Write fake `nvpmodel` and `jetson_clocks` into `bin_dir`; calls land in bin_dir/calls.jsonl."""
    _exe(bin_dir / "jetson_clocks", _JETSON_CLOCKS.format(python=sys.executable, log=str(bin_dir / "calls.jsonl"),
                                                          state=str(bin_dir / "state"), fail=fail,
                                                          locked=SHOW_LOCKED, unlocked=SHOW_UNLOCKED))
    _exe(bin_dir / "nvpmodel", _NVPMODEL.format(python=sys.executable, mode=mode, mode_id=mode_id))
    return bin_dir


def calls(bin_dir: Path) -> list[list[str]]:
    p = bin_dir / "calls.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []
