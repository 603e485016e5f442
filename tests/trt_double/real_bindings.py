"""The real TensorRT Python bindings, imported without TensorRT or a GPU, for the conformance test.

PyPI's `tensorrt-bindings` (8.6.1) and `tensorrt-cu12-bindings` (10.3.0, 11.4.0.106) are the compiled modules
alone (the `tensorrt-cu12` and `-libs` packages are stubs that download from NVIDIA's index). Each wheel is
downloaded by pip with its sha256 checked against the hashes below (PyPI's simple index), kept in a cache
(`build/trt-bindings`, or $EDGEBRANCHY_TRT_BINDINGS_CACHE) and reused while its hash still matches, unpacked into
a directory of its own (all three provide the same module), and imported in a subprocess whose LD_LIBRARY_PATH
holds stand-in libnvinfer/libnvinfer_plugin/libnvonnxparser(/libnvparsers) libraries compiled here from
stub_nvinfer.c with the machine's C compiler: only the symbols have to resolve, nothing is called.

When the registry or the compiler is unavailable the test fails under CI=true and is skipped, with the reason,
elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: version -> (distribution, exact version, soname major, the libraries its module links to)
WHEELS = {
    "8.6.1": ("tensorrt-bindings", "8.6.1", 8, ("nvinfer", "nvinfer_plugin", "nvonnxparser", "nvparsers")),
    "10.3.0": ("tensorrt-cu12-bindings", "10.3.0", 10, ("nvinfer", "nvinfer_plugin", "nvonnxparser")),
    "11.4.0": ("tensorrt-cu12-bindings", "11.4.0.106", 11, ("nvinfer", "nvinfer_plugin", "nvonnxparser")),
}
#: sha256 of every x86_64 wheel of those releases, by CPython tag (https://pypi.org/simple/<distribution>/)
HASHES = {
    "8.6.1": {
        "cp36": "ffbf4d0fb37e384515f63e9fd01c57fb57676cd9241b259234efc69c34c0af77",
        "cp37": "ff1523fc7caa51aab30c6ee2fdc6c767764e19c0183236e8ca879e14ee31b9f5",
        "cp38": "c743e67e94c2e8bcbb81b02b3c6dda59f4ab8c46471d64a7f37475b359a8cfdb",
        "cp39": "0a55a8aefad4c4bb4c3abd6b79dbd04ab70c26484e05f299fce6ca95fd43879e",
        "cp310": "6f9d26d5d8f6b87d62048c5ef4bb33b179cdf944d1b28480458d8c27d1e65456",
        "cp311": "705cfab5c60f0bed7d939559d880165a761bd9ac0f4203004948a760eef99838",
    },
    "10.3.0": {
        "cp38": "e157eb8b71fe172420d85519f7e7cf929c4975ca385df3a5506464cad73dac72",
        "cp39": "db337018c55043502eff993f165160044b4bebb935f01c8f8f93e4ee71481dc4",
        "cp310": "1d6e4cf08ef1f54f6fd44a33cf6b253050af2fc6e9a1d92e40e1436a1d858eb0",
        "cp311": "59ace22d7f2ca1e9dcde2cb0cb5916912cb3cd5a9d72dd7852be0160d9b3a0ee",
        "cp312": "f5c2582aeaa7f5628d2c4d4148a701ebe97be78f7ff3b46a617f0ee0cb5460f2",
    },
    "11.4.0": {
        "cp38": "d863ba4fc9bbff50f75a3804df6030420aa2b22505058ce16e4fc8f547d2d0b2",
        "cp39": "9a69ff5100dae21b5149671a26b2c462828ebf94e911eadfc09d1f366d49935c",
        "cp310": "d9f927d7337c360c3947d99fc0db17c3b3b935e677237f0475c7b054f28d2540",
        "cp311": "e2ab48f316bbff6a7a44a30e94a9ceb0d2cf6645ff39feadecfa68d7cb7a94bf",
        "cp312": "6490518c9e072d57e0a815ad80b103596933efe776ffa61766ef31c25dbd8b39",
        "cp313": "37bba007c65325087db7409d4ab48e460b4be4abcf99cb3e8b6979642f33c521",
        "cp314": "2b002a7be7b5a76850a33625470103799d86c1531d26bd95daf0471a71c32d33",
    },
}
MODULE = "tensorrt_bindings"  # the package every one of these wheels installs


class Unavailable(Exception):
    """The real bindings cannot be had here (registry, compiler, platform); the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEBRANCHY_TRT_BINDINGS_CACHE") or ROOT / "build" / "trt-bindings")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wheel(version: str, into: Path) -> Path:
    """The wheel of `version` for this interpreter, downloaded (hash-checked by pip) unless the cached one matches."""
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    if platform.machine() != "x86_64" or tag not in HASHES[version]:
        raise Unavailable(f"no pinned TensorRT {version} bindings wheel for {tag} on {platform.machine()} "
                          f"(pinned: {', '.join(HASHES[version])} on x86_64)")
    want = HASHES[version][tag]
    for found in into.glob("*.whl"):
        if _sha256(found) == want:
            return found
        found.unlink()  # damaged or another version's: fetch again
    dist, exact = WHEELS[version][:2]
    into.mkdir(parents=True, exist_ok=True)
    req = into / "requirements.txt"
    req.write_text(f"{dist}=={exact} --hash=sha256:{want}\n")
    p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                        "--require-hashes", "-r", str(req), "-d", str(into)], capture_output=True, text=True,
                       timeout=600)
    got = [w for w in into.glob("*.whl") if _sha256(w) == want]
    if p.returncode != 0 or not got:
        raise Unavailable(f"pip could not download {dist}=={exact} ({tag}): "
                          + (p.stderr.strip().splitlines() or ["no wheel"])[-1])
    return got[0]


def _stubs(major: int, libs: tuple, into: Path) -> Path:
    """lib<name>.so.<major> for each library, compiled from stub_nvinfer.c (reused while the source is unchanged)."""
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    src = HERE / "stub_nvinfer.c"
    stamp = into / "source.sha256"
    if stamp.is_file() and stamp.read_text() == _sha256(src) and all(
            (into / f"lib{n}.so.{major}").is_file() for n in libs):
        return into
    if cc is None:
        raise Unavailable("no C compiler (gcc or cc) to build the stand-in TensorRT libraries")
    into.mkdir(parents=True, exist_ok=True)
    for name in libs:
        out = into / f"lib{name}.so.{major}"
        p = subprocess.run([cc, "-shared", "-fPIC", "-O0", f"-DEB_{name.upper()}", "-o", str(out), str(src)],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise Unavailable(f"{cc} could not build {out.name}: {p.stderr.strip()[:300]}")
    stamp.write_text(_sha256(src))
    return into


def prepare(version: str) -> tuple:
    """(directory holding the unpacked module, directory of the stand-in libraries) for `version`."""
    dist, exact, major, libs = WHEELS[version]
    base = cache_dir() / version
    wheel = _wheel(version, base / "wheel")
    site = base / "site"
    stamp = site / "wheel.sha256"
    digest = _sha256(wheel)
    if not (stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(site, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
        stamp.write_text(digest)
    return site, _stubs(major, libs, cache_dir() / f"libs{major}")


def describe(version: str) -> dict:
    """The real module of `version`, described by describe_module.py in a subprocess."""
    site, libs = prepare(version)
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([str(libs), os.environ.get("LD_LIBRARY_PATH", "")]),
           "PYTHONPATH": str(site)}
    p = subprocess.run([sys.executable, str(HERE / "describe_module.py"), MODULE], capture_output=True, text=True,
                       env=env, cwd=str(site), timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"the real TensorRT {version} bindings did not import with the stand-in libraries:\n"
                             + p.stderr[-2000:])
    d = json.loads(p.stdout)
    if not d["version"].startswith(version.rsplit(".", 1)[0]):
        raise AssertionError(f"asked for TensorRT {version}, the module says {d['version']}")
    return d


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(version: str) -> dict:
    """`describe(version)`; when the bindings cannot be had, a test failure under CI=true, a skip elsewhere."""
    import pytest

    try:
        return describe(version)
    except Unavailable as e:
        if in_ci():
            pytest.fail(f"CI needs the real TensorRT {version} bindings for the conformance test and could not get "
                        f"them: {e}")
        pytest.skip(f"the real TensorRT {version} bindings could not be had here: {e}")
