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


def _run(argv: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
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
            continue  # needs torchvision: test_mynets_block
        code = compile(_small(body), f"README.md:{line}", "exec")
        exec(code, {"__name__": "__readme__"})
        ran += 1
    assert ran >= 2


def test_mynets_block(tmp_path, monkeypatch):
    pytest.importorskip("torchvision", reason="torchvision is not installed: the README's mynets.py needs it")
    [(line, body)] = [(n, b) for n, b in fenced("python") if b.startswith("# mynets.py")]
    (tmp_path / "mynets.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    net = importlib.import_module("mynets").branchy(num_classes=3, input_size=64)
    assert net.num_exits == 3


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
