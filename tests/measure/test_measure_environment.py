import importlib.metadata

from edgebranchy.measure import environment as E


def test_collect_environment_has_the_facts():
    env = E.collect_environment(which=lambda tool: None)
    for key in ("hostname", "cpu_model", "cpu_cores", "governor", "power_mode", "gpu", "python", "platform", "versions"):
        assert key in env
    assert env["cpu_cores"]["logical"] >= 1
    assert env["versions"]["numpy"] == importlib.metadata.version("numpy")
    assert env["versions"]["psutil"] == importlib.metadata.version("psutil")
    assert env["power_mode"] is None and env["gpu"] is None  # no tools on PATH


def test_versions_report_absent_libraries_as_none(monkeypatch):
    monkeypatch.setitem(E.LIBRARIES, "surely-not-installed", ("surely-not-installed-dist",))
    assert E.library_versions()["surely-not-installed"] is None


def test_cpu_model_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248\n")
    assert E.cpu_model(f) == "Intel(R) Xeon(R) Gold 6248"
    f.write_text("processor\t: 0\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert E.cpu_model(f) == "Raspberry Pi 4 Model B Rev 1.4"


def test_nvpmodel_and_nvidia_smi_are_parsed(tmp_path, script):
    nvp = script(tmp_path / "nvpmodel", 'print("NV Power Mode: MAXN\\n0")\n')
    smi = script(tmp_path / "nvidia-smi", 'print("NVIDIA H100 80GB HBM3, 550.54.15, 81559")\n')
    tools = {"nvpmodel": nvp, "nvidia-smi": smi}
    assert E.jetson_power_mode(tools.get) == {"name": "MAXN", "id": 0}
    assert E.nvidia_gpus(tools.get) == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory_mib": 81559}]


def test_failing_tools_are_recorded_not_hidden(tmp_path, script):
    bad = script(tmp_path / "nvpmodel", "import sys\nsys.exit(1)\n")
    assert "error" in E.jetson_power_mode(lambda t: bad)
    odd = script(tmp_path / "nvpmodel2", 'print("something else")\n')
    assert "unexpected" in E.jetson_power_mode(lambda t: odd)["error"]
