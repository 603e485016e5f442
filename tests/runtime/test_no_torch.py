"""The device side (runtime, bench, report, --help) works where torch is not installed."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from eb_testutil import NO_TORCH, ROOT



def _run(code: str, timeout=300):
    return subprocess.run([sys.executable, "-c", NO_TORCH + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_block_works():
    r = _run("import torch")
    assert r.returncode != 0 and "ModuleNotFoundError: No module named 'torch'" in r.stderr  # as without torch


def test_imports_and_help_without_torch():
    r = _run("""
        import edgebranchy.runtime.runner, edgebranchy.runtime.pipeline, edgebranchy.runtime.backends.onnxruntime
        import edgebranchy.bench.session, edgebranchy.report, edgebranchy.exits.calibrate, edgebranchy.artifact.manifest
        from edgebranchy.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr


def test_predict_bench_report_without_torch(tiny_artifact, tmp_path):
    out = tmp_path / "r.json"
    r = _run(f"""
        from edgebranchy.cli import main
        args = ["bench", {str(tiny_artifact)!r}, "--profile", "x86-cpu", "--power", "estimate",
                "--dataset", "synthetic", "--samples", "16", "--trials", "1", "--warmup", "1",
                "--min-window", "0", "--idle", "0", "--backend", "onnxruntime", "--out", {str(out)!r}]
        assert main(args) == 0
        assert main(["predict", {str(tiny_artifact)!r}, "--dataset", "synthetic", "--samples", "32"]) == 0
        assert main(["report", {str(out)!r}, "--out", {str(tmp_path / "rep")!r}]) == 0
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
    assert json.loads(out.read_text())["runs"][0]["variants"]["branchy"]["exit_counts"]
    assert (tmp_path / "rep" / "report.html").is_file()
