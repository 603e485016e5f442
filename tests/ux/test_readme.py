"""The README's examples run as written: its pipeline shell block and its Python blocks.

The code run is the README's own text; only the settings that make it small are substituted (the
table below: the digits data set instead of Fashion-MNIST, fewer epochs, a short bench). The figures
the README quotes from its quickstart come from the recorded run it names.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from eb_testutil import ROOT

README = ROOT / "README.md"
RECORDED_QUICKSTART = ROOT / "benchmarks" / "results" / "quickstart.md"

#: (README text, what the test runs instead): small settings only
SUBSTITUTIONS = [
    ("--dataset fashion-mnist", "--dataset digits"),
    ('load_dataset("fashion-mnist")', 'load_dataset("digits")'),
    ("--epochs 10", "--epochs 4"),
]
#: options added to a command of the pipeline block to keep it short
EXTRA = {
    "bench": ["--power", "estimate", "--samples", "60", "--trials", "1", "--warmup", "5", "--warmup-max", "0",
              "--min-window", "0.05", "--idle", "0.1"],
    "predict": ["--samples", "200"],
}


def _text() -> str:
    return README.read_text(encoding="utf-8")


def fenced(lang: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```lang block."""
    text = _text()
    out = []
    for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.S | re.M):
        out.append((text[:m.start()].count("\n") + 2, m.group(1)))
    return out


def _small(text: str) -> str:
    for a, b in SUBSTITUTIONS:
        text = text.replace(a, b)
    return text


def pipeline_commands() -> list[list[str]]:
    """The edgebranchy commands of "The pipeline step by step" block, as argv lists."""
    [body] = [b for _, b in fenced("bash") if "edgebranchy train --model b-lenet" in b and "activate" in b]
    cmds = []
    for line in body.splitlines():
        line = re.sub(r"\s*\[[^\]]*\]", "", line)  # [optional parts]
        argv = shlex.split(_small(line), comments=True)
        if not argv or argv[0] == ".":
            continue
        assert argv[0] == "edgebranchy", line
        cmds.append(argv[1:] + EXTRA.get(argv[1], []))
    return cmds


def _run(argv: list[str], cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgebranchy", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def sweep_commands() -> list[list[str]]:
    """The commands of the "Reading, sweeping and comparing results" block, as argv lists."""
    [body] = [b for _, b in fenced("bash") if "--form segments,single-graph" in b and "edgebranchy compare" in b]
    return [shlex.split(line, comments=True)[1:] for line in body.splitlines()
            if shlex.split(line, comments=True)]


def test_the_blocks_are_found():
    cmds = pipeline_commands()
    assert [c[0] for c in cmds] == ["models", "train", "calibrate", "export", "predict", "bench", "report"]
    assert len(fenced("python")) >= 3


def test_readme_pipeline_and_python_run_as_written(tmp_path, monkeypatch):
    for argv in pipeline_commands():
        r = _run(argv, tmp_path)
        assert r.returncode == 0, f"edgebranchy {' '.join(argv)}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert (tmp_path / "runs" / "report" / "report.html").is_file()
    # the sweep block on the artifact just built: the sweep, then the same sweep as "a later one" and compare
    bench, compare = sweep_commands()
    assert bench[0] == "bench" and compare[0] == "compare"
    small = EXTRA["bench"] + ["--dataset", "digits"]
    for out in ("runs/sweep.json", "runs/sweep-new.json"):
        argv = [out if a == "runs/sweep.json" else a for a in bench] + small
        r = _run(argv, tmp_path)
        assert r.returncode == 0, f"edgebranchy {' '.join(argv)}:\n{r.stderr[-2000:]}"
    r = _run(compare + ["--max-regression", "1000%"], tmp_path)  # a noisy tiny run: the gate itself is tested elsewhere
    assert r.returncode == 0 and "4 matched run(s)" in r.stdout, r.stdout + r.stderr
    monkeypatch.chdir(tmp_path)
    ran = 0
    for line, body in fenced("python"):
        if body.startswith("# mynets.py"):
            continue  # test_mynets_block and test_torchvision_section_runs_as_written run it
        code = compile(_small(body), f"README.md:{line}", "exec")
        exec(code, {"__name__": "__readme__"})
        ran += 1
    assert ran >= 2


#: the torchvision section's commands, made small (images of 32 x 32, a few steps)
MINE_SUBSTITUTIONS = [("--image-size 256 --crop 224", "--image-size 40 --crop 32"),
                      ("--epochs 3", "--epochs 1 --max-steps 2 --batch-size 16")]


def _mynets(tmp_path: Path) -> Path:
    """The section's mynets.py, written as the README shows it."""
    [body] = [b for _, b in fenced("python") if b.startswith("# mynets.py")]
    (tmp_path / "mynets.py").write_text(body)
    return tmp_path / "mynets.py"


def mine_commands() -> tuple[dict, list[list[str]]]:
    """(the variables it exports, the edgebranchy commands as argv lists) of the torchvision section's block."""
    [body] = [b for _, b in fenced("bash") if "--model mynets:branchy" in b]
    env, cmds = {}, []
    for line in body.replace("\\\n", " ").splitlines():
        for a, b in MINE_SUBSTITUTIONS:
            line = line.replace(a, b)
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if argv[0] == "export":
            key, _, value = argv[1].partition("=")
            env[key] = value
            continue
        assert argv[0] == "edgebranchy", line
        cmds.append(argv[1:] + (EXTRA["bench"] if argv[1] == "bench" else []))
    return env, cmds


def test_mynets_block(tmp_path, monkeypatch):
    """The README's mynets.py runs here: without torchvision it builds edgebranchy.models.tv_compat's ResNet-18."""
    _mynets(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mynets = importlib.import_module("mynets")
    net = mynets.branchy(num_classes=3, input_size=64)
    assert net.num_exits == 3 and type(mynets.resnet18(num_classes=3)).__name__ == "ResNet"
    assert set(net.main_state_dict()) >= {"stages.0.conv1.weight", "stages.1.layer2.1.bn1.running_var",
                                          "stages.2.fc.weight"}  # torchvision's keys under stages.K.


def test_torchvision_section_runs_as_written(tmp_path, monkeypatch):
    """The section's shell block, verbatim but for smaller images and fewer steps, on a folder with damaged
    files and a `resnet18.pt` saved from the same architecture; the frozen backbone is the given model."""
    pytest.importorskip("PIL", reason="Pillow is not installed")
    import csv

    import torch

    from eb_images import make_image_folder
    from edgebranchy.models.checkpoint import load_checkpoint

    _mynets(tmp_path)
    folder = make_image_folder(tmp_path / "photos", per_class=12)
    make_image_folder(tmp_path / "new-photos", per_class=2, bad=False, seed=1)
    mynets = _import_file(tmp_path / "mynets.py")
    torch.manual_seed(7)
    model = mynets.resnet18(num_classes=3).eval()
    torch.save(model.state_dict(), tmp_path / "resnet18.pt")
    env, cmds = mine_commands()
    assert env == {"EDGEBRANCHY_TRUST_MODEL_CODE": "mynets"}
    assert [c[0] for c in cmds] == ["train", "calibrate", "export", "predict", "bench"]
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    for argv in cmds:
        r = _run(argv, tmp_path, env)
        assert r.returncode == 0, f"edgebranchy {' '.join(argv)}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        if argv[0] == "train":
            assert all(sum(str(p.relative_to(tmp_path)) in ln for ln in r.stderr.splitlines()) == 1
                       for p in folder["bad"]), r.stderr  # each damaged file named once, then skipped
    with open(tmp_path / "answers.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3 * 2
    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "mynets")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, base = load_checkpoint(tmp_path / "runs" / "mine.pt").build()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(base.eval()(x), model(x))  # --freeze-backbone: the baseline is resnet18.pt's model
    _flagship_on_every_backend(tmp_path, monkeypatch)


def _flagship_on_every_backend(tmp_path: Path, monkeypatch) -> None:
    """Issue 24: the section's split `layer2.1.relu` is inside a residual block, so segment 2 takes two tensors;
    export wrote single.onnx for it, and bench runs it on torch and on TensorRT (the strict double)."""
    from trt_double import assert_clean, install

    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.cli import main
    from edgebranchy.tensorrt.build import build_engines

    monkeypatch.chdir(tmp_path)
    art = tmp_path / "runs" / "all-exits"  # calibration may switch the inner exit off: keep it, as a user can
    assert main(["export", "runs/mine.pt", "--keep-all-exits", "--out", str(art)]) == 0
    a = Artifact.load(art)
    assert a.segment_inputs(2) == ["x.0", "x.1"]
    assert a.single_graph is not None and (art / a.single_graph["file"]).is_file()
    d = install(monkeypatch, "10.3.0")
    build_engines(art, {"precision": "fp32", "workspace_mb": 64, "builder_optimization_level": 3, "max_batch": 8,
                        "dla_core": -1, "gpu_fallback": False}, log=lambda s: None)
    for backend in ("torch", "tensorrt"):
        out = tmp_path / f"{backend}.json"
        rc = main(["bench", str(art), "--backend", backend, "--dataset", "imagefolder", "--data-dir", "photos",
                   "--out", str(out), *EXTRA["bench"]])
        assert rc == 0 and out.is_file(), backend
    assert_clean(d)


def _import_file(path: Path):
    """Import a file as a module of its own (the README's mynets.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"readme_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_figures_come_from_the_recorded_run():
    """The README's quickstart table and time are the ones in benchmarks/results/quickstart.md."""
    text = _text()
    recorded = RECORDED_QUICKSTART.read_text(encoding="utf-8")
    assert "benchmarks/results/quickstart.md" in text
    start = text.index("## Two commands")
    section = text[start:text.index("\n## ", start + 5)]
    rows = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert len(rows) >= 3  # header, rule, one run
    for row in rows:
        assert row in recorded, row
    verdict = [ln for ln in section.splitlines() if ln.startswith("branchy is ")]
    assert verdict and all(ln in recorded for ln in verdict), verdict  # the verdict the README quotes was printed
    m = re.search(r"(\d+) s end to end", section)
    assert m and f"{m.group(1)} s" in recorded
    # the quickstart's own --help promises what the README says
    r = _run(["quickstart", "--help"], ROOT)
    assert "benchmarks/results/quickstart.md" in " ".join(r.stdout.split())


def test_makefile_quickstart_is_the_command():
    assert "-m edgebranchy quickstart" in (ROOT / "Makefile").read_text()


def test_makefile_quickstart_runs_again_over_its_earlier_run(tmp_path):
    """Issue 24 item 6: a second `make quickstart` failed with "pass --force", which make cannot pass. The
    Makefile's own command, given the folder an earlier quickstart left, replaces it (and only such a folder)."""
    import argparse
    import json

    from edgebranchy.cli import quickstart
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.kinds import QUICKSTART_MARKER, QUICKSTART_SCHEMA

    [line] = [ln for ln in (ROOT / "Makefile").read_text().splitlines() if "-m edgebranchy quickstart" in ln]
    argv = shlex.split(line.split("-m edgebranchy", 1)[1])
    sub = argparse.ArgumentParser().add_subparsers()
    quickstart.add_parser(sub)
    args = sub.choices["quickstart"].parse_args(argv[1:])
    earlier = tmp_path / args.out
    earlier.mkdir(parents=True)
    (earlier / QUICKSTART_MARKER).write_text(json.dumps({"schema": QUICKSTART_SCHEMA, "state": "done"}))
    assert quickstart._check_outputs(earlier, args.force) is True  # replaced, not refused
    with pytest.raises(EdgeBranchyError, match="pass --force"):  # what the command without --force said
        quickstart._check_outputs(earlier, False)
