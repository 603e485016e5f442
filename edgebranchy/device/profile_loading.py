"""Where device profiles are and how one is read: by name or by path to a `.toml` file, validated by
`device.profile_schema`.

Profiles are looked up in `$EDGEBRANCHY_PROFILES` when it is set, else in the
copy installed with the package (`edgebranchy/profiles/`, read with
importlib.resources; the wheel maps the repository's top-level `profiles/`
there), else, in a source checkout, in the repository's `profiles/`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from edgebranchy.device.profile_schema import Profile, display_path, validate_profile
from edgebranchy.errors import EdgeBranchyError

ENV_VAR = "EDGEBRANCHY_PROFILES"


def profiles_dir() -> Path:
    """Where profiles live: $EDGEBRANCHY_PROFILES, else the installed package's, else the checkout's."""
    env = os.environ.get(ENV_VAR)
    if env:
        d = Path(env)
        if not d.is_dir():
            raise EdgeBranchyError(f"{ENV_VAR}={env} is not a directory")
        return d
    packaged = _packaged_profiles()
    if packaged is not None:
        return packaged
    d = Path(__file__).resolve().parents[2] / "profiles"  # a source checkout (or an editable install)
    if not d.is_dir():
        raise EdgeBranchyError(f"no profiles installed with edgebranchy and none at {d}; set {ENV_VAR} to a directory")
    return d


def _packaged_profiles() -> Path | None:
    """`edgebranchy/profiles/` as installed from the wheel, or None (a source checkout has none)."""
    if sys.version_info >= (3, 9):
        from importlib.resources import files  # novermin (guarded; 3.8 takes the backport below)
    else:
        from importlib_resources import files  # a dependency on Python 3.8 only
    d = files("edgebranchy") / "profiles"
    # A wheel installs into a directory, so this is a real path; a zipped install would
    # need importlib.resources.as_file, which edgebranchy does not support.
    return Path(str(d)) if isinstance(d, Path) and d.is_dir() else None


def list_profiles(directory: str | Path | None = None) -> list[str]:
    """Names of the profiles in `directory` (default: `profiles_dir()`), sorted."""
    d = Path(directory) if directory is not None else profiles_dir()
    return sorted(p.stem for p in d.glob("*.toml"))


def _read_toml(path: Path) -> dict:
    from edgebranchy.util.readers import parse_toml, read_text

    return parse_toml(read_text(path, "profile"), f"profile {display_path(path)}", "profile")


def load_profile(name_or_path: str | os.PathLike, directory: str | Path | None = None) -> Profile:
    """Load and validate a profile given by name (`jetson-nano`) or by path to a .toml file."""
    spec = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or "/" in spec or os.sep in spec or spec.endswith(".toml"):
        path = Path(spec)
        if not path.is_file():
            raise EdgeBranchyError(f"profile file not found: {spec}")
    else:
        d = Path(directory) if directory is not None else profiles_dir()
        path = d / f"{spec}.toml"
        if not path.is_file():
            known = ", ".join(list_profiles(d)) or "(none)"
            raise EdgeBranchyError(f"unknown profile {spec!r}; known profiles: {known} (or give a path to a .toml file)")
    return validate_profile(_read_toml(path), path)
