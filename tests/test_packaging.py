"""The device-side install as a user gets it: the wheel, its profiles, a venv without torch, Python 3.8.

The wheel is built from a copy of the sources with setuptools' PEP 517 hook and installed
with pip into a new venv (no system site-packages) whose only other packages are the core
dependencies (numpy, onnxruntime, psutil, tqdm and what they need). Those are linked from
this interpreter's site-packages instead of downloaded, so the test runs offline; pip
installs the wheel with `--no-index`, so a dependency the wheel declares beyond them
(torch, onnx, ...) fails the install.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from eb_testutil import ROOT

CORE = ("numpy", "onnxruntime", "psutil", "tqdm")
#: what runs on the device, without torch: checked for Python 3.8 by vermin
DEVICE_SIDE = ("edgebranchy/runtime", "edgebranchy/bench", "edgebranchy/measure", "edgebranchy/device",
               "edgebranchy/exits", "edgebranchy/data", "edgebranchy/report", "edgebranchy/artifact",
               "edgebranchy/tensorrt", "edgebranchy/cli", "edgebranchy/util",
               "edgebranchy/errors.py", "edgebranchy/__init__.py", "edgebranchy/__main__.py")


#: vermin has no `python -m vermin`; this is what its console script runs
VERMIN = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)


def test_device_side_needs_only_python_3_8():
    pytest.importorskip("vermin", reason="vermin is not installed (the dev extra installs it)")
    r = _run([*VERMIN, "--no-tips", "--violations", "--target=3.8-", *DEVICE_SIDE], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.search(r"Minimum required versions: (\d+)\.(\d+)", r.stdout)
    assert found and (int(found[1]), int(found[2])) <= (3, 8), r.stdout


def test_vermin_catches_a_3_9_api(tmp_path):
    """The check above can fail: the same command refuses code that needs Python 3.9."""
    pytest.importorskip("vermin", reason="vermin is not installed (the dev extra installs it)")
    (tmp_path / "new.py").write_text("import functools, math\n\n@functools.cache\ndef f(a, b):\n"
                                     "    return math.lcm(a, b)\n")
    r = _run([*VERMIN, "--no-tips", "--violations", "--target=3.8-", tmp_path / "new.py"])
    assert r.returncode != 0 and "functools.cache" in r.stdout and "math.lcm" in r.stdout


#: 3.9+ methods vermin sees only on literals (it cannot know a variable's type)
_UNSEEN_BY_VERMIN = re.compile(r"\.(removeprefix|removesuffix|is_relative_to|with_stem|readlink)\(")


def test_device_side_avoids_3_9_methods_vermin_cannot_type():
    hits = []
    for entry in DEVICE_SIDE:
        path = ROOT / entry
        for f in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if _UNSEEN_BY_VERMIN.search(line):
                    hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, hits


def test_requires_python_says_3_8():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.8"$', text, re.M)


# ---------------------------------------------------------------- the wheel

def _core_closure() -> list[metadata.Distribution]:
    """The installed distributions of CORE and everything they require here (markers evaluated)."""
    from packaging.requirements import Requirement

    wanted = list(CORE)
    if sys.version_info < (3, 11):
        wanted.append("tomli")
    if sys.version_info < (3, 9):
        wanted.append("importlib_resources")
    seen: dict[str, metadata.Distribution] = {}
    while wanted:
        name = wanted.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        dist = metadata.distribution(name)
        seen[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                wanted.append(req.name)
    return list(seen.values())


def _link_distributions(dists, site: Path) -> None:
    """Make `dists` importable in `site` by linking their top-level files and folders."""
    for dist in dists:
        if not dist.files:
            raise RuntimeError(f"{dist.metadata['Name']} has no RECORD: cannot link it")
        root = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files if f.parts and f.parts[0] != ".."}:
            target = site / top
            if not target.exists() and (root / top).exists():
                target.symlink_to(root / top)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (a stale build/ in the checkout cannot leak in)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("edgebranchy", "profiles"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = work / "dist"
    out.mkdir()
    code = "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))"
    r = _run([sys.executable, "-c", code, out], cwd=src)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (whl,) = out.glob("edgebranchy-*.whl")
    return whl


@pytest.fixture(scope="session")
def device_venv(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel and the core dependencies only; returns its bin/ directory."""
    venv = tmp_path_factory.mktemp("device") / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert r.returncode == 0, r.stderr
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    r = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    assert r.returncode == 0, r.stderr
    _link_distributions(_core_closure(), Path(r.stdout.strip()))
    r = _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-index", "--no-cache-dir",
              "--disable-pip-version-check", wheel])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return bindir


def _device_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEBRANCHY_PROFILES", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("edgebranchy/profiles/"))
    expected = sorted(f"edgebranchy/profiles/{p.name}" for p in (ROOT / "profiles").glob("*.toml"))
    assert shipped == expected and len(expected) >= 14
    assert not [n for n in names if n.startswith(("profiles/", "tests/"))]
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Python: >=3.8" in text
    core = [ln for ln in text.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert not [ln for ln in core if re.search(r"\b(torch|onnx|onnxsim)\b", ln)], core


@pytest.mark.slow
def test_installed_wheel_runs_profiles_predict_bench_without_torch(device_venv, tiny_artifact, tmp_path):
    exe = device_venv / "edgebranchy"
    py = device_venv / "python"
    r = _run([py, "-c", "import importlib.util as u; print([m for m in ('torch', 'onnx', 'sklearn') if u.find_spec(m)])"])
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr

    # profiles come from the installed package, not from a checkout (the cwd is elsewhere)
    r = _run([exe, "profiles"], cwd=tmp_path, env=_device_env())
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert "site-packages" in first and first.rstrip(":").endswith(os.path.join("edgebranchy", "profiles")), first
    for p in (ROOT / "profiles").glob("*.toml"):
        assert p.stem in r.stdout

    r = _run([exe, "predict", tiny_artifact, "--dataset", "synthetic", "--samples", "32"], cwd=tmp_path,
             env=_device_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "branchy  accuracy" in r.stdout

    out = tmp_path / "results.json"
    r = _run([exe, "bench", tiny_artifact, "--profile", "auto", "--power", "estimate", "--dataset", "synthetic",
              "--samples", "16", "--trials", "1", "--warmup", "1", "--min-window", "0", "--idle", "0",
              "--out", out], cwd=tmp_path, env=_device_env())
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())["runs"][0]
    assert res["variants"]["branchy"]["exit_counts"]
    assert "auto-detected" in r.stderr  # diagnostics are on stderr


@pytest.mark.slow
def test_installed_wheel_env_and_file_overrides(device_venv, tmp_path):
    exe = device_venv / "edgebranchy"
    mine = tmp_path / "mine"
    mine.mkdir()
    text = (ROOT / "profiles" / "x86-cpu.toml").read_text().replace('name = "x86-cpu"', 'name = "my-box"')
    (mine / "my-box.toml").write_text(text)
    r = _run([exe, "profiles"], cwd=tmp_path, env=_device_env(EDGEBRANCHY_PROFILES=str(mine)))
    assert r.returncode == 0 and "my-box" in r.stdout and "jetson-nano" not in r.stdout, r.stdout + r.stderr
    r = _run([exe, "profiles", mine / "my-box.toml"], cwd=tmp_path, env=_device_env())
    assert r.returncode == 0 and r.stdout.startswith("my-box:"), r.stdout + r.stderr
