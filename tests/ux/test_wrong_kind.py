"""A command given another kind of edgebranchy file says what it is and what to run instead."""
from __future__ import annotations

import json
import zipfile

import pytest

from edgebranchy.cli import main
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.kinds import QUICKSTART_MARKER, QUICKSTART_SCHEMA, REPORT_MARKER, what_is
from edgebranchy.util.wrongkind import refuse_wrong_kind, wrong_kind_message


def make(kind: str, d) -> str:
    """A file or folder that `what_is` recognises as `kind` (signatures only: nothing heavy)."""
    if kind == "checkpoint":
        p = d / "model.pt"
        with zipfile.ZipFile(p, "w") as z:  # what torch.save writes, with the checkpoint header first
            z.writestr("model/data.pkl", b"\x80\x02}q\x00X\x15\x00\x00\x00edgebranchy.checkpoint")
    elif kind == "artifact":
        p = d / "model-artifact"
        p.mkdir()
        (p / "manifest.json").write_text(json.dumps({"schema": "edgebranchy.artifact"}))
    elif kind == "results":
        p = d / "results.json"
        p.write_text(json.dumps({"schema": "edgebranchy.results", "schema_version": 1}))
    elif kind == "trial-log":
        p = d / "results.json.jsonl"
        p.write_text(json.dumps({"type": "start", "environment": {}, "config": {"artifact": "runs/a"}}) + "\n")
    elif kind == "report":
        p = d / "report"
        p.mkdir()
        (p / "report.md").write_text("# r\n")
        (p / REPORT_MARKER).write_text(json.dumps({"schema": "edgebranchy.report"}))
    elif kind == "quickstart":
        p = d / "quick"
        p.mkdir()
        (p / QUICKSTART_MARKER).write_text(json.dumps({"schema": QUICKSTART_SCHEMA}))
    else:
        raise ValueError(kind)
    assert what_is(p) == kind
    return str(p)


FOUND = ("checkpoint", "artifact", "results", "trial-log", "report", "quickstart")
WANTED = ("checkpoint", "artifact", "results")


@pytest.mark.parametrize("found", FOUND)
@pytest.mark.parametrize("wanted", WANTED)
def test_every_kind_pair(found, wanted, tmp_path):
    p = make(found, tmp_path)
    msg = wrong_kind_message(p, wanted, "cmd")
    if found == wanted:
        assert msg is None
        refuse_wrong_kind(p, wanted, "cmd")  # quietly
        return
    article = "an" if wanted == "artifact" else "a"
    noun = "results file" if wanted == "results" else wanted
    assert msg.startswith(f"{p} is ") and f", not {article} {noun}" in msg, msg
    assert "\n" not in msg
    hint = msg.split(": ", 1)[1]
    assert "edgebranchy " in hint or "report.html" in hint or "its " in hint, msg
    with pytest.raises(EdgeBranchyError) as e:
        refuse_wrong_kind(p, wanted, "cmd")
    assert str(e.value) == msg


def test_the_messages_people_see(tmp_path):
    ck, res, log = make("checkpoint", tmp_path), make("results", tmp_path), make("trial-log", tmp_path)
    assert wrong_kind_message(ck, "artifact", "bench") == (
        f"{ck} is a checkpoint, not an artifact: export it first: edgebranchy export {ck} --out "
        f"{tmp_path / 'model-artifact'}")
    assert "unfinished bench: finish it with edgebranchy bench runs/a --out " \
        f"{tmp_path / 'results.json'} --resume" in wrong_kind_message(log, "results", "report")
    assert f"edgebranchy report {res}" in wrong_kind_message(res, "artifact", "predict")
    assert f"--cost {res}" in wrong_kind_message(res, "checkpoint|artifact", "calibrate")
    assert "edgebranchy build" in wrong_kind_message(make("artifact", tmp_path), "checkpoint", "export")
    q = make("quickstart", tmp_path)
    assert wrong_kind_message(q, "artifact", "bench").endswith(f"its artifact is {tmp_path / 'quick' / 'artifact'}")


def test_what_is_left_to_the_loaders(tmp_path):
    """Missing paths, plain folders and damaged files: the command's loader says what is wrong."""
    (tmp_path / "bad.pt").write_bytes(b"\x80junk")
    for p in (tmp_path / "nope.pt", tmp_path, tmp_path / "bad.pt"):
        assert wrong_kind_message(p, "checkpoint", "calibrate") is None
    assert "is a file, not an artifact directory" in wrong_kind_message(tmp_path / "bad.pt", "artifact", "bench")
    with pytest.raises(ValueError):
        wrong_kind_message(tmp_path, "nonsense", "x")


@pytest.mark.parametrize("argv, found, says", [
    (["calibrate", "{results}", "--in-place"], "results", "--cost"),
    (["export", "{artifact}", "--out", "{tmp}/a2"], "artifact", "edgebranchy build"),
    (["build", "{checkpoint}"], "checkpoint", "export it first"),
    (["predict", "{results}"], "results", "edgebranchy report"),
    (["predict", "{checkpoint}"], "checkpoint", "export it first"),
    (["remote", "{checkpoint}", "board", "--dry-run"], "checkpoint", "export it first"),
    (["bench", "{checkpoint}", "--out", "{tmp}/r.json"], "checkpoint", "export it first"),
    (["report", "{checkpoint}", "--out", "{tmp}/rep"], "checkpoint", "export it"),
    (["report", "{artifact}", "--out", "{tmp}/rep"], "artifact", "bench it"),
    (["compare", "{results}", "{checkpoint}"], "checkpoint", "export it"),
])
def test_commands_refuse_before_any_work(argv, found, says, tmp_path, capsys):
    paths = {k: make(k, tmp_path) for k in ("results", "artifact", "checkpoint")}
    argv = [a.format(tmp=tmp_path, **paths) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and f"{paths[found]} is " in err[0], err


def test_tensorrt_advice_depends_on_the_machine(tmp_path):
    from edgebranchy.tensorrt.device import machine_kind, missing_tensorrt_advice

    assert machine_kind(str(tmp_path)) == "no-nvidia-gpu"
    assert "--backend onnxruntime" in missing_tensorrt_advice("no-nvidia-gpu")
    assert "JetPack" not in missing_tensorrt_advice("no-nvidia-gpu")
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text("NVRM version: 550\n")
    assert machine_kind(str(tmp_path)) == "nvidia-gpu"
    assert "pip install tensorrt" in missing_tensorrt_advice("nvidia-gpu")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R35 (release)\n")
    assert machine_kind(str(tmp_path)) == "jetson"
    assert "python3-libnvinfer" in missing_tensorrt_advice("jetson")


def test_tensorrt_import_error_on_this_machine():
    """Here (no TensorRT): the message is the one for this machine, never Jetson advice on a plain x86."""
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from edgebranchy.tensorrt.device import import_tensorrt, machine_kind, missing_tensorrt_advice

    with pytest.raises(EdgeBranchyError) as e:
        import_tensorrt()
    assert missing_tensorrt_advice(machine_kind()) in str(e.value)
    if machine_kind() != "jetson":
        assert "JetPack" not in str(e.value)
