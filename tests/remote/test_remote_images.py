"""`remote` with an artifact trained on an image folder (issue 24 item 3), against a loopback OpenSSH board:
the venv gets the `images` extra (Pillow) without asking and is installed again when the extras change, a bounded
sample of the user's images goes to the board checked by sha256, and the board benches on it."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest
from loopback_sshd import board_python

from eb_testutil import ROOT
from edgebranchy.report import load_results

pytest.importorskip("PIL", reason="Pillow is not installed")
BENCH = "--power estimate --samples 9 --trials 1 --warmup 1 --min-window 0 --idle 0 --backend onnxruntime"


@pytest.fixture(scope="module")
def image_artifact(tmp_path_factory):
    """B-LeNet on a generated image folder (grey 28x28, damaged files included), two steps, all exits kept."""
    from eb_images import make_image_folder
    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.train.trainer import TrainConfig, Trainer

    d = tmp_path_factory.mktemp("img")
    make_image_folder(d / "photos", per_class=12)
    cfg = TrainConfig(model="b-lenet", dataset="imagefolder", data_dir=str(d / "photos"),
                      image={"size": 28, "color": "L"}, epochs=1, baseline_epochs=0, max_steps=2, batch_size=16)
    Trainer(cfg, d / "m.pt", progress=False).run()
    return d, export_checkpoint(d / "m.pt", d / "art", prune=False, check_samples=8, log=lambda s: None)


def _remote(art, loopback, out, wd, *extra):
    cmd = [sys.executable, "-m", "edgebranchy", "remote", str(art), "board-a", "--profile", "x86-cpu",
           "--workdir", str(wd), "-F", str(loopback.config), "--remote-python", board_python(),
           "--pip-args=--no-index", f"--bench-args={BENCH}", "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=ROOT)


def _board(out) -> dict:
    [b] = json.loads((out / "status.json").read_text())["boards"]
    return b


def test_image_artifact_on_a_board_with_a_sample_of_the_data(image_artifact, loopback, tmp_path):
    d, art = image_artifact
    wd, out = tmp_path / "board-fs", tmp_path / "out"
    r = _remote(art, loopback, out, wd, "--data-dir", str(d / "photos"), "--samples", "9")
    b = _board(out)
    assert r.returncode == 0 and b["status"] == "ok", r.stdout + r.stderr + json.dumps(b)[-3000:]
    steps = {s["name"]: s for s in b["steps"]}
    assert steps["data"]["status"] == "copied" and steps["venv"]["detail"].endswith("extras images")
    sent = sorted(p.relative_to(wd / "data" / "photos").as_posix() for p in (wd / "data" / "photos").rglob("*")
                  if p.is_file())
    # 9 files taken from the classes in turn (3 each), damaged ones included (the board names and skips them)
    assert len(sent) == 10 and "SHA256SUMS" in sent
    assert [s.split("/")[0] for s in sent if s != "SHA256SUMS"].count("cat") == 3
    res = load_results(out / "boards" / "board-a" / "results.json")["runs"][0]
    assert res["environment"]["dataset"] == "imagefolder"
    assert sum(res["variants"]["branchy"]["exit_counts"]) > 0
    # the extras change: installed again; the same data: not sent again
    r = _remote(art, loopback, out, wd, "--data-dir", str(d / "photos"), "--samples", "9", "--extras", "report")
    b = _board(out)
    assert r.returncode == 0 and b["status"] == "ok", r.stdout + r.stderr
    steps = {s["name"]: s for s in b["steps"]}
    assert steps["data"]["status"] == "reused"
    assert steps["venv"]["status"] == "installed" and steps["venv"]["detail"].endswith("extras images,report")


def test_an_image_artifact_without_data_for_the_boards_is_refused(image_artifact, tmp_path, capsys):
    from edgebranchy.cli import main

    _, art = image_artifact
    assert main(["remote", str(art), "nobody@127.0.0.1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "trained on an image folder" in err and "--data-dir DIR" in err and len(err.strip().splitlines()) == 1


def test_the_board_refuses_data_whose_sha256_differs(tmp_path):
    """The data part's SHA256SUMS is checked on the board (scripts.replace_dir) before the folder is used."""
    from eb_images import make_image_folder
    from edgebranchy.remote.bundle import data_part
    from edgebranchy.remote.scripts import replace_dir

    make_image_folder(tmp_path / "photos", per_class=2, bad=False)
    part = data_part(tmp_path / "photos", 4)
    script = replace_dir(str(tmp_path / "wd"), "data/photos", part.digest, checked=True)
    ok = subprocess.run(["sh", "-c", script], input=part.data, capture_output=True)
    assert ok.returncode == 0 and (tmp_path / "wd" / "data" / "photos.digest").read_text() == part.digest
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(part.data)) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name != "SHA256SUMS" and m.name.endswith(".png"):
                data = data[:-1] + bytes([data[-1] ^ 1])  # one bit of one image flipped in transit
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    bad = subprocess.run(["sh", "-c", replace_dir(str(tmp_path / "wd2"), "data/photos", part.digest, checked=True)],
                         input=buf.getvalue(), capture_output=True)
    assert bad.returncode == 6 and b"sha256 check failed" in bad.stderr
    assert not (tmp_path / "wd2" / "data" / "photos").exists()
