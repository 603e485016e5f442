import subprocess
import sys

from edgebranchy.cli import main
from edgebranchy.device import detection as D
from edgebranchy.device import profile_loading as L


def test_list_shows_every_profile_with_its_power_source(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in L.list_profiles():
        assert name in out
    assert "tegrastats" in out and "estimate" in out and "nvml" in out


def test_validate_ok_and_bad(tmp_path, monkeypatch, capsys):
    assert main(["profiles", "--validate"]) == 0
    good = (L.profiles_dir() / "x86-cpu.toml").read_text()
    (tmp_path / "x86-cpu.toml").write_text(good)
    (tmp_path / "bad.toml").write_text(good.replace("intra_op_threads = 1", "intra_op_threads = 'two'"))
    monkeypatch.setenv(L.ENV_VAR, str(tmp_path))
    capsys.readouterr()
    assert main(["profiles", "--validate"]) == 2
    captured = capsys.readouterr()
    assert "ok  x86-cpu" in captured.out
    assert "bad.toml: [runtime].intra_op_threads must be an integer from 0" in captured.err and "got 'two'" in captured.err


def test_show_one_and_unknown(capsys):
    assert main(["profiles", "raspberry-pi-5"]) == 0
    assert "p_idle_w = 4.4" in capsys.readouterr().out
    assert main(["profiles", "no-such-board"]) == 2
    assert "unknown profile" in capsys.readouterr().err


def test_detect_prints_choice_and_reason(monkeypatch, capsys):
    monkeypatch.setattr(D, "detect_profile", lambda: ("raspberry-pi-4", "board model 'Raspberry Pi 4 Model B'"))
    assert main(["profiles", "--detect"]) == 0
    out = capsys.readouterr().out
    assert "raspberry-pi-4" in out and "Raspberry Pi 4 Model B" in out


def test_cli_module_imports_only_the_standard_library():
    code = (
        "import sys, edgebranchy.cli.profiles as m; "
        "bad = [n for n in ('edgebranchy.device.profile_schema', 'edgebranchy.device.profile_loading', "
        "'edgebranchy.device.detection', 'numpy', 'psutil') if n in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
