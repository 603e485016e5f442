"""What goes to every board, prepared once on the workstation: the artifact without engines, a wheel, profiles.

Each part has a content digest; a board that already holds a part with the
same digest does not get it again.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError

ENGINES_PREFIX = "engines/"  # artifact/engines.py's ENGINES_DIR: engines only run where they were built
# what a wheel build reads from the source tree (a user's checkout may also hold data sets and runs)
_FOR_WHEEL_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md")
_FOR_WHEEL_DIRS = ("edgebranchy", "profiles")


@dataclass(frozen=True)
class Part:
    """One thing to put on a board: a tar stream (or a file) and the digest that identifies its content."""

    name: str      # "artifact", "wheel", "profiles"
    digest: str
    data: bytes    # tar of the part (artifact, profiles) or the wheel file's bytes
    label: str     # what the user sees: a directory or file name
    filename: str = ""  # the wheel's file name (pip needs it)

    @property
    def size_text(self) -> str:
        n = len(self.data)
        return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0  # the tar is compared by the digest of its content, never by its bytes
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _digest(members: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in sorted(members):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def artifact_part(path: str | os.PathLike) -> Part:
    """The verified artifact as the board gets it: manifest + listed files, no engines and no engine records."""
    from edgebranchy.artifact.manifest import MANIFEST, Artifact

    root = Path(path)
    art = Artifact.load(root, verify=True)  # damaged files stop here, not on ten boards
    manifest = json.loads(json.dumps(art.manifest))
    manifest.pop("tensorrt", None)
    manifest["files"] = {rel: v for rel, v in manifest["files"].items() if not rel.startswith(ENGINES_PREFIX)}
    members = [(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())]
    for rel in sorted(manifest["files"]):
        members.append((rel, (root / rel).read_bytes()))
    return Part("artifact", _digest(members), _tar(members), root.name)


def profiles_part(directory: str | os.PathLike | None = None) -> Part:
    """The device profiles this edgebranchy knows (the board measures with the same ones)."""
    from edgebranchy.device.profile_loading import profiles_dir

    d = Path(directory) if directory is not None else profiles_dir()
    members = [(p.name, p.read_bytes()) for p in sorted(d.glob("*.toml"))]
    if not members:
        raise EdgeBranchyError(f"no profiles (*.toml) in {d}")
    return Part("profiles", _digest(members), _tar(members), str(d))


def wheel_part(wheel: str | os.PathLike) -> Part:
    """A wheel file, identified by the content of its members (zip timestamps do not count)."""
    p = Path(wheel)
    try:
        with zipfile.ZipFile(p) as z:
            members = [(i.filename, z.read(i)) for i in z.infolist() if not i.is_dir()]
    except (OSError, zipfile.BadZipFile) as e:
        raise EdgeBranchyError(f"cannot read wheel {p}: {e}") from None
    if not p.name.endswith(".whl") or not any(n.endswith(".dist-info/METADATA") for n, _ in members):
        raise EdgeBranchyError(f"{p} is not a wheel")
    return Part("wheel", _digest(members), p.read_bytes(), p.name, filename=p.name)


def project_root() -> Path | None:
    """The source tree of the running edgebranchy (a checkout or an editable install), if there is one."""
    import edgebranchy

    root = Path(edgebranchy.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def build_wheel(out_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Build a wheel of this project (no dependencies, no network) from a clean copy of the source tree."""
    src = Path(root) if root is not None else project_root()
    if src is None:
        raise EdgeBranchyError("this edgebranchy was not installed from a source tree: pass `wheel` FILE "
                               "(a wheel of the same version, e.g. from `pip download edgebranchy --no-deps`)")
    out = Path(out_dir)
    copy = out / "src"
    # a copy, so the build's build/ and *.egg-info never appear in the user's checkout
    copy.mkdir(parents=True)
    for name in _FOR_WHEEL_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, copy / name)
    for lic in src.glob("LICEN[CS]E*"):
        shutil.copy2(lic, copy / lic.name)
    for name in _FOR_WHEEL_DIRS:
        if (src / name).is_dir():
            shutil.copytree(src / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                        "-w", str(out), str(copy)], capture_output=True, text=True, env=env)
    wheels = sorted(out.glob("edgebranchy-*.whl"))
    if p.returncode != 0 or not wheels:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        raise EdgeBranchyError(f"could not build a wheel of {src} (pass `wheel` FILE instead):\n{tail}")
    return wheels[-1]
