import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.device import detection as D
from edgebranchy.device import profile_loading as L

SHIPPED = [
    "arm64-cpu", "jetson-agx-orin", "jetson-agx-xavier", "jetson-nano", "jetson-orin-nano", "jetson-thor",
    "jetson-tx2", "jetson-xavier-nx", "macos-arm64", "macos-x86_64", "raspberry-pi-4", "raspberry-pi-5",
    "x86-cpu", "x86-nvidia-gpu",
]


def test_every_shipped_profile_validates():
    assert L.list_profiles() == SHIPPED
    for name in SHIPPED:
        p = L.load_profile(name)
        assert p.name == name == p.path.stem
        assert p.description and p.power.estimate.source
        assert p.to_dict()["runtime"]["batch_size"] >= 1


@pytest.mark.parametrize("name", ["x86-cpu", "raspberry-pi-4", "raspberry-pi-5", "arm64-cpu", "macos-arm64",
                                  "macos-x86_64", "jetson-nano", "jetson-tx2"])
def test_cpu_devices_use_one_ort_thread_without_spinning(name):
    r = L.load_profile(name).runtime
    assert (r.backend, r.intra_op_threads, r.allow_spinning) == ("onnxruntime", 1, False)


def test_total_rails_and_sources():
    assert L.load_profile("jetson-nano").power.total_rail == "POM_5V_IN"
    assert L.load_profile("jetson-agx-orin").power.total_rail == "sum"
    assert L.load_profile("jetson-agx-xavier").power.total_rail == "sum"
    assert L.load_profile("jetson-thor").power.total_rail == "VIN"
    assert L.load_profile("x86-nvidia-gpu").power.source == "nvml"
    est = L.load_profile("raspberry-pi-5").power.estimate
    assert (est.p_idle_w, est.p_max_w) == (4.40, 7.86)


BASE = (L.profiles_dir() / "x86-cpu.toml").read_text()


def write(tmp_path, text, name="x.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("intra_op_threads = 1", "intra_op_threads = 'two'", "[runtime].intra_op_threads must be an integer from 0 (the CPUs this process may use) to"),
        ("intra_op_threads = 1", "intra_op_threads = true", "[runtime].intra_op_threads must be an integer from 0"),
        ("allow_spinning = false", "allow_spinning = 0", "[runtime].allow_spinning must be true or false, got 0"),
        ('source = "auto"', 'source = "multimeter"', "[power].source must be one of 'auto', 'tegrastats'"),
        ('precision = "fp32"', 'precision = "fp8"', '[tensorrt].precision must be "fp32", "fp16" or "int8"'),
        ("builder_optimization_level = 3", "builder_optimization_level = 7", "[tensorrt].builder_optimization_level must be an integer from 0 to 5, got 7"),
        ("dla_core = -1", "dla_core = -2", "[tensorrt].dla_core must be an integer from -1 to 7, got -2"),
        ("batch_size = 1\n", "", "[runtime].batch_size is missing"),
        ("p_idle_w = 10.0", 'p_idle_w = "ten"', "[power.estimate].p_idle_w must be a number of watts from 0 to 1000, got 'ten'"),
        ("p_active_core_w = 9.0\n", "", "[power.estimate].p_active_core_w is missing (model 'cpu_time' needs it)"),
        ("graph_optimization = \"all\"", "graph_optimisation = \"all\"", "[runtime] has unknown key 'graph_optimisation'"),
        ('name = "x86-cpu"', 'name = "X86 CPU"', "[device].name must be a lower-case name"),
        ('machine = ["x86_64", "AMD64"]', "machine = []", "[device.match] needs device_tree_model or machine"),
        ('machine = ["x86_64", "AMD64"]', 'machine = "x86_64"', "[device.match].machine must be a list of non-empty strings"),
        ("[runtime]", "[runtimes]", "unknown section [runtimes]"),
        ("[tensorrt]", "[tensorrt\n", "not valid TOML"),
    ],
)
def test_malformed_profiles_name_the_file_and_key(tmp_path, old, new, message):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(EdgeBranchyError) as e:
        L.load_profile(path)
    assert message in str(e.value)
    assert "x.toml" in str(e.value)


def test_missing_section(tmp_path):
    text = BASE[: BASE.index("[runtime]")]
    with pytest.raises(EdgeBranchyError, match=r"missing section \[runtime\]"):
        L.load_profile(write(tmp_path, text))


def test_unknown_name_lists_known_ones():
    with pytest.raises(EdgeBranchyError) as e:
        L.load_profile("jetson-nanoo")
    assert "unknown profile 'jetson-nanoo'" in str(e.value) and "jetson-nano," in str(e.value)
    with pytest.raises(EdgeBranchyError, match="not found"):
        L.load_profile("nowhere/x.toml")


def test_env_var_directory(tmp_path, monkeypatch):
    write(tmp_path, BASE.replace('name = "x86-cpu"', 'name = "my-box"'), "my-box.toml")
    monkeypatch.setenv(L.ENV_VAR, str(tmp_path))
    assert L.list_profiles() == ["my-box"]
    assert L.load_profile("my-box").name == "my-box"
    monkeypatch.setenv(L.ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(EdgeBranchyError, match="not a directory"):
        L.profiles_dir()


@pytest.mark.parametrize(
    "model, expected",
    [
        ("NVIDIA Jetson Nano Developer Kit", "jetson-nano"),
        ("quill", "jetson-tx2"),
        ("NVIDIA Jetson Xavier NX Developer Kit", "jetson-xavier-nx"),
        ("Jetson-AGX", "jetson-agx-xavier"),
        ("NVIDIA Orin Nano Developer Kit", "jetson-orin-nano"),
        ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "jetson-orin-nano"),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "jetson-orin-nano"),
        ("Jetson AGX Orin", "jetson-agx-orin"),
        ("NVIDIA Jetson AGX Thor Developer Kit", "jetson-thor"),
        ("Raspberry Pi 4 Model B Rev 1.4", "raspberry-pi-4"),
        ("Raspberry Pi 5 Model B Rev 1.0", "raspberry-pi-5"),
    ],
)
def test_detect_from_device_tree(tmp_path, model, expected):
    dt = tmp_path / "model"
    dt.write_bytes(model.encode() + b"\x00")
    name, why = D.detect_profile(device_tree_model=dt, cpuinfo=tmp_path / "none", machine="aarch64",
                                 which=lambda tool: None)
    assert name == expected
    assert model in why and str(dt) in why


def test_detect_raspberry_pi_from_cpuinfo_when_no_device_tree(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    name, why = D.detect_profile(device_tree_model=tmp_path / "absent", cpuinfo=cpuinfo, machine="aarch64",
                                 which=lambda tool: None)
    assert name == "raspberry-pi-5" and "cpuinfo" in why


@pytest.mark.parametrize("smi, expected", [(None, "x86-cpu"), ("/usr/bin/nvidia-smi", "x86-nvidia-gpu")])
def test_detect_x86_with_and_without_nvidia_smi(tmp_path, smi, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")
    name, why = D.detect_profile(device_tree_model=tmp_path / "absent", cpuinfo=cpuinfo, machine="x86_64",
                                 which=lambda tool: smi if tool == "nvidia-smi" else None)
    assert name == expected
    assert "AMD EPYC 7B13" in why and ("nvidia-smi at /usr/bin" in why if smi else "nvidia-smi not found" in why)


def test_detect_unknown_board_falls_back_to_the_architecture(tmp_path):
    dt = tmp_path / "model"
    dt.write_text("Pine64 RockPro64")
    name, why = D.detect_profile(device_tree_model=dt, cpuinfo=tmp_path / "none", machine="aarch64",
                                 system="Linux", which=lambda t: None)
    assert name == "arm64-cpu"
    assert "'Pine64 RockPro64'" in why and "matches no board profile" in why and "'aarch64'" in why


def test_detect_unknown_architecture_is_an_error(tmp_path):
    with pytest.raises(EdgeBranchyError) as e:
        D.detect_profile(device_tree_model=tmp_path / "absent", cpuinfo=tmp_path / "none", machine="riscv64",
                         system="Linux", which=lambda t: None)
    assert "riscv64" in str(e.value) and "pass `profile` NAME" in str(e.value) and "arm64-cpu" in str(e.value)


def test_resolve_profile(tmp_path):
    p, why = D.resolve_profile("auto", device_tree_model=tmp_path / "absent", cpuinfo=tmp_path / "none",
                               machine="x86_64", which=lambda t: None)
    assert p.name == "x86-cpu" and why.startswith("auto-detected x86-cpu")
    p, why = D.resolve_profile("raspberry-pi-4")
    assert p.name == "raspberry-pi-4" and "--profile raspberry-pi-4" in why
