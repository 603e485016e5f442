"""`--profile auto` on real boards: device-tree model strings as the boards report them.

Sources (each string below is copied from the file or output named beside it):
- upstream Linux device trees, `model = "..."` of github.com/torvalds/linux
  arch/arm64/boot/dts/nvidia/*.dts, arch/arm/boot/dts/broadcom/*.dts,
  arch/arm64/boot/dts/rockchip/rk3588-rock-5b.dts (the string /proc/device-tree/model
  holds when the board boots that kernel's device tree);
- Raspberry Pi OS: the firmware replaces the model with its own "... Rev N.N" string
  (the issue's "Raspberry Pi 3 Model B Plus Rev 1.3"; the others as listed on
  raspberrypi.com/documentation/computers/raspberry-pi.html and quoted by projects
  that parse /proc/device-tree/model);
- NVIDIA L4T (JetPack 4) kernels: "lanai-3636" (TX2 NX, L4T 32.6/32.7, as printed by
  `jetson_release` in users' published logs).
"""
from __future__ import annotations

import pytest

from edgebranchy.device import detection as D
from edgebranchy.device import profile_loading as L

BOARDS = [
    # (model string, expected profile, source)
    ("NVIDIA Jetson Nano Developer Kit", "jetson-nano", "nvidia/tegra210-p3450-0000.dts"),
    ("NVIDIA Jetson Nano 2GB Developer Kit", "jetson-nano", "nvidia/tegra210-p3541-0000.dts"),
    ("NVIDIA Jetson TX2 Developer Kit", "jetson-tx2", "nvidia/tegra186-p2771-0000.dts"),
    ("NVIDIA Jetson TX2 NX Developer Kit", "jetson-tx2", "nvidia/tegra186-p3509-0000+p3636-0001.dts"),
    ("lanai-3636", "jetson-tx2", "L4T 32.7 on TX2 NX (jetson_release)"),
    ("NVIDIA Jetson AGX Xavier Developer Kit", "jetson-agx-xavier", "nvidia/tegra194-p2972-0000.dts"),
    ("NVIDIA Jetson Xavier NX Developer Kit", "jetson-xavier-nx", "nvidia/tegra194-p3509-0000+p3668-0000.dts"),
    ("NVIDIA Jetson Xavier NX Developer Kit (eMMC)", "jetson-xavier-nx",
     "nvidia/tegra194-p3509-0000+p3668-0001.dts"),
    ("NVIDIA Jetson AGX Orin Developer Kit", "jetson-agx-orin", "nvidia/tegra234-p3737-0000+p3701-0000.dts"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "jetson-orin-nano",
     "nvidia/tegra234-p3768-0000+p3767-0000.dts"),
    ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano", "nvidia/tegra234-p3768-0000+p3767-0005.dts"),
    ("NVIDIA Jetson AGX Thor Developer Kit", "jetson-thor", "nvidia/tegra264-p4071-0000+p3834-0008.dts"),
    ("NVIDIA P3971-0089+P3834-0008 Engineering Reference Platform", "jetson-thor",
     "nvidia/tegra264-p3971-0089+p3834-0008.dts"),
    ("Raspberry Pi 4 Model B", "raspberry-pi-4", "broadcom/bcm2711-rpi-4-b.dts"),
    ("Raspberry Pi 400", "raspberry-pi-4", "broadcom/bcm2711-rpi-400.dts"),
    ("Raspberry Pi Compute Module 4 IO Board", "raspberry-pi-4", "broadcom/bcm2711-rpi-cm4-io.dts"),
    ("Raspberry Pi 4 Model B Rev 1.4", "raspberry-pi-4", "Raspberry Pi OS firmware"),
    ("Raspberry Pi 400 Rev 1.0", "raspberry-pi-4", "Raspberry Pi OS firmware"),
    ("Raspberry Pi Compute Module 4 Rev 1.0", "raspberry-pi-4", "Raspberry Pi OS firmware"),
    ("Raspberry Pi 5 Model B", "raspberry-pi-5", "broadcom/bcm2712-rpi-5-b.dts"),
    ("Raspberry Pi 5 Model B Rev 1.0", "raspberry-pi-5", "Raspberry Pi OS firmware"),
    ("Raspberry Pi 500 Rev 1.0", "raspberry-pi-5", "Raspberry Pi OS firmware"),
    ("Raspberry Pi Compute Module 5 Rev 1.0", "raspberry-pi-5", "Raspberry Pi OS firmware"),
    # boards without a profile of their own: the generic 64-bit ARM profile, with the reason
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "arm64-cpu", "Raspberry Pi OS firmware (the issue)"),
    ("Raspberry Pi 3 Model B+", "arm64-cpu", "broadcom/bcm2837-rpi-3-b-plus.dts"),
    ("Radxa ROCK 5B", "arm64-cpu", "rockchip/rk3588-rock-5b.dts"),
    ("NVIDIA IGX Orin Development Kit", "arm64-cpu", "nvidia/tegra234-p3740-0002+p3701-0008.dts"),
]


@pytest.mark.parametrize("model, expected, source", BOARDS, ids=[b[0] for b in BOARDS])
def test_real_board_model_strings(tmp_path, model, expected, source):
    dt = tmp_path / "model"
    dt.write_bytes(model.encode() + b"\x00")  # the device tree property is NUL-terminated
    name, why = D.detect_profile(device_tree_model=dt, cpuinfo=tmp_path / "none", machine="aarch64",
                                 system="Linux", which=lambda tool: None)
    assert name == expected, source
    assert repr(model) in why
    if expected == "arm64-cpu":
        assert "matches no board profile" in why and "generic profile" in why


def test_every_board_profile_is_reached_by_some_real_string():
    boards = {n for n in L.list_profiles() if L.load_profile(n).match.device_tree_model}
    assert boards == {expected for _, expected, _ in BOARDS} - {"arm64-cpu"}


@pytest.mark.parametrize(
    "machine, system, smi, expected",
    [
        ("arm64", "Darwin", None, "macos-arm64"),        # Apple Silicon: no device tree
        ("x86_64", "Darwin", None, "macos-x86_64"),      # Intel Mac (and Rosetta)
        ("x86_64", "Linux", None, "x86-cpu"),
        ("AMD64", "Windows", None, "x86-cpu"),
        ("x86_64", "Linux", "/usr/bin/nvidia-smi", "x86-nvidia-gpu"),
        ("aarch64", "Linux", None, "arm64-cpu"),         # an Arm server or VM, no device tree
        ("ARM64", "Windows", None, "arm64-cpu"),         # not the Mac profile: its system rule says Darwin
    ],
)
def test_no_device_tree_uses_the_architecture_and_system(tmp_path, machine, system, smi, expected):
    name, why = D.detect_profile(device_tree_model=tmp_path / "absent", cpuinfo=tmp_path / "none",
                                 machine=machine, system=system, which=lambda t: smi if t == "nvidia-smi" else None)
    assert name == expected
    assert f"machine {machine!r}" in why and f"system {system!r}" in why and "unreadable" in why


def test_mac_power_is_an_estimate_and_says_so():
    for name in ("macos-arm64", "macos-x86_64", "arm64-cpu"):
        p = L.load_profile(name)
        assert p.power.source in ("estimate", "auto")
        assert "not measured" in p.power.estimate.source
