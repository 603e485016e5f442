"""The POSIX shell run on a board, one function per step (every value quoted; nothing but sh, tar, cat there).

Layout of the work directory on a board:

    WORKDIR/artifacts/NAME/       the artifact as sent (+ engines built there)
    WORKDIR/artifacts/NAME.digest digest of what was sent
    WORKDIR/profiles/ + profiles.digest
    WORKDIR/wheels/*.whl
    WORKDIR/venv/ + venv.digest   "<how it was created> <digest of the installed wheel>"
    WORKDIR/runs/RUN/             doctor.json, results.json, results.json.latencies.npz, results.json.jsonl
"""
from __future__ import annotations

import shlex

PROBE_MARK = "edgebranchy-probe:"
#: the line the fetch prints just before its tar: what a login banner (an `echo` in .bashrc) printed comes before it
TAR_MARK = b"edgebranchy-tar-follows\n"


def workdir_expr(workdir: str) -> str:
    """A shell word for the work directory; a leading ~ becomes $HOME (quoted, so spaces survive)."""
    if workdir == "~":
        return '"$HOME"'
    if workdir.startswith("~/"):
        return '"$HOME"/' + shlex.quote(workdir[2:])
    return shlex.quote(workdir)


def _head(workdir: str) -> str:
    return f"set -u\nWD={workdir_expr(workdir)}\n"


def probe(workdir: str, artifact: str, python: str, data: str = "") -> str:
    """Print key=value facts about the board and what its work directory already holds (`data`: the name of
    the evaluation data sent, if any)."""
    a = shlex.quote(artifact)
    d = f" data/{shlex.quote(data)}.digest" if data else ""
    return _head(workdir) + f"""\
say() {{ printf '{PROBE_MARK}%s=%s\\n' "$1" "$2"; }}
say machine "$(uname -m)"
if [ -e /etc/nv_tegra_release ] || grep -qi nvidia /proc/device-tree/compatible 2>/dev/null; then
  say jetson 1
else
  say jetson 0
fi
[ -r /etc/nv_tegra_release ] && say l4t "$(head -n 1 /etc/nv_tegra_release)"
[ -r /proc/device-tree/model ] && say model "$(tr -d '\\000' < /proc/device-tree/model)"
for f in artifacts/{a}.digest profiles.digest venv.digest{d}; do
  [ -r "$WD/$f" ] && say "digest:$f" "$(cat "$WD/$f")"
done
[ -d "$WD/artifacts/"{a} ] && say artifact_dir 1
[ -x "$WD/venv/bin/python" ] && say venv 1
PY={shlex.quote(python)}
if out=$("$PY" -c 'import platform, sys; print(sys.executable, platform.python_version())' 2>/dev/null); then
  say python "$out"
fi
exit 0
"""


def replace_dir(workdir: str, rel: str, digest: str, checked: bool = False) -> str:
    """Unpack a tar from stdin into WORKDIR/REL (a fresh sibling renamed over it), then record its digest.
    `checked`: the tar holds a SHA256SUMS that every file must match before the rename (exit 6 if not)."""
    d = shlex.quote(rel)
    check = """ \\
  && { (cd "$D.new" && sha256sum -c SHA256SUMS >/dev/null) || { echo "sha256 check failed" >&2; exit 6; }; }""" \
        if checked else ""
    return _head(workdir) + f"""D="$WD/"{d}
mkdir -p "$(dirname "$D")" && rm -rf "$D.new" && mkdir "$D.new" && tar -xf - -C "$D.new"{check} \\
  && rm -rf "$D" && mv "$D.new" "$D" \\
  && printf '%s' {shlex.quote(digest)} > "$D.digest.tmp" && mv "$D.digest.tmp" "$D.digest"
"""


def put_wheel(workdir: str, filename: str) -> str:
    """Write the wheel from stdin into WORKDIR/wheels/ (older wheels removed)."""
    f = shlex.quote(filename)
    return _head(workdir) + f"""mkdir -p "$WD/wheels" && cat > "$WD/wheels/.tmp.whl" \\
  && rm -f "$WD"/wheels/*.whl && mv "$WD/wheels/.tmp.whl" "$WD/wheels/"{f}
"""


def environment(workdir: str, python: str, venv_args: list[str], pip_args: list[str], wheel: str,
                create_key: str, state: str, recreate: bool, extras: list[str] = ()) -> str:
    """Create the venv if needed, install the wheel (forced: same version, new content) and its dependencies,
    with the project's `extras` (e.g. images: Pillow)."""
    va = " ".join(shlex.quote(a) for a in venv_args)
    pa = " ".join(shlex.quote(a) for a in pip_args)
    w = '"$WD/wheels/"' + shlex.quote(wheel)
    wx = '"$WD/wheels/"' + shlex.quote(wheel + (f"[{','.join(extras)}]" if extras else ""))
    create = f"""rm -rf "$WD/venv" "$WD/venv.digest"
echo "creating venv: {python} -m venv {' '.join(venv_args)}"
{shlex.quote(python)} -m venv {va} "$WD/venv" || {{ echo "venv creation failed" >&2; exit 3; }}
""" if recreate else ""
    return _head(workdir) + create + f"""rm -f "$WD/venv.digest"
pip() {{ "$WD/venv/bin/python" -m pip "$@"; }}
pip install --disable-pip-version-check --no-input --no-deps --force-reinstall {pa} {w} || exit 4
pip install --disable-pip-version-check --no-input {pa} {wx} || exit 5
printf '%s' {shlex.quote(state)} > "$WD/venv.digest"
"""


def has_tensorrt(workdir: str) -> str:
    """Print TensorRT's version if the venv can import it (exit 1 if not)."""
    return _head(workdir) + """"$WD/venv/bin/python" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null
"""


def edgebranchy(workdir: str, run: str, args: list[str]) -> str:
    """Run `edgebranchy ARGS` in WORKDIR/runs/RUN with the shipped profiles; its exit status is the script's.

    Arguments starting with `@/` name paths in the work directory (`@/artifacts/x` -> $WD/artifacts/x).
    """
    words = []
    for a in args:
        words.append('"$WD"' + shlex.quote(a[1:]) if a.startswith("@/") else shlex.quote(a))
    return _head(workdir) + f"""mkdir -p "$WD/runs/"{shlex.quote(run)} && cd "$WD/runs/"{shlex.quote(run)} || exit 1
EDGEBRANCHY_PROFILES="$WD/profiles" exec "$WD/venv/bin/edgebranchy" {' '.join(words)}
"""


def fetch_run(workdir: str, run: str) -> str:
    """A tar of WORKDIR/runs/RUN on stdout."""
    return _head(workdir) + f"""cd "$WD/runs/"{shlex.quote(run)} || exit 1
printf '%s\\n' {shlex.quote(TAR_MARK.decode().strip())}
exec tar -cf - .
"""
