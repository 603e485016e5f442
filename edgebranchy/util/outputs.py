"""The one check every command runs on its output path before doing any work.

An output must not be, contain or lie inside any of the command's inputs, and an
existing output is replaced only with force and only when it is an earlier
output of the same kind (see `edgebranchy.util.kinds`), never an arbitrary file
or folder. The folder it goes into must be writable (probed with a temporary file).
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.kinds import describe, what_is

DIR_KINDS = ("artifact", "report", "fleet")
FILE_KINDS = ("checkpoint", "results", "plan", "trial-log", "doctor", "predictions")


def _resolved(p: str | os.PathLike) -> Path:
    return Path(os.path.abspath(p)).resolve(strict=False)


def _inside(a: Path, b: Path) -> bool:
    """a is b or lies inside b."""
    return a == b or b in a.parents


def _same_file(a, b) -> bool:
    """Hard links too: two names of one file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_empty_dir(p: Path) -> bool:
    try:
        return p.is_dir() and not any(p.iterdir())
    except OSError:
        return False


def os_error_text(e: OSError) -> str:
    """'Read-only file system' etc.: the cause of an OSError in words, without the errno clutter."""
    if e.errno is not None:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__


def _probe_writable(out: Path, option: str) -> None:
    """Refuse an output whose folder cannot be created or written, before any work starts."""
    anc = out.parent
    while not anc.exists():
        if anc.parent == anc:
            break
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise EdgeBranchyError(f"{option} {out}: {anc} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".edgebranchy-probe.", dir=anc)
    except OSError as e:
        raise EdgeBranchyError(f"{option} {out}: cannot write in {anc}: {os_error_text(e)}") from None
    os.close(fd)
    os.unlink(tmp)
    if anc != out.parent:
        # The missing folders are created later; a pseudo file system such as /proc refuses that.
        try:
            probe = Path(tempfile.mkdtemp(prefix=".edgebranchy-probe.", dir=anc))
            probe.rmdir()
        except OSError as e:
            raise EdgeBranchyError(f"{option} {out}: cannot create folders in {anc}: {os_error_text(e)}") from None


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], kind: str,
                 force: bool = False, option: str = "`out`",
                 data_dirs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse `out` unless writing `kind` there destroys nothing the user did not ask to replace.

    `inputs`: every path the command reads (None entries are skipped); `out` may not be, contain or
    lie inside one. `data_dirs`: folders the command reads some files from (a dataset directory);
    `out` may lie inside one, but not be or contain it. Returns `out` as a Path.
    """
    if kind not in DIR_KINDS + FILE_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = Path(out)
    if str(out) == "":
        raise EdgeBranchyError(f"{option} is empty")
    refuse_symlink(out, option)
    r_out = _resolved(out)
    _check_overlap(out, r_out, inputs, option, inside_ok=False)
    _check_overlap(out, r_out, data_dirs, option, inside_ok=True)
    found = what_is(out)
    if found != "missing":
        if found == kind:
            if not force:
                raise EdgeBranchyError(f"{option} {out} already holds {describe(kind)}; pass `force` to replace it")
        elif kind in DIR_KINDS and _is_empty_dir(out):
            pass  # an empty folder loses nothing
        elif kind == "fleet":
            raise EdgeBranchyError(f"{option} {out} is {describe(found)}; `remote` writes its boards/, status.json "
                                   "and report/ only into a new or empty folder or an earlier remote run's: "
                                   "choose another output")
        elif kind in DIR_KINDS and found in FILE_KINDS + ("other-file",):
            raise EdgeBranchyError(f"{option} {out} exists and is not a directory ({describe(found)}); "
                                   "choose another output")
        elif kind in FILE_KINDS and found in ("other-dir", "artifact", "report", "quickstart", "fleet"):
            raise EdgeBranchyError(f"{option} {out} is a folder; name the {kind} file to write, e.g. "
                                   f"{out / ('model.pt' if kind == 'checkpoint' else 'results.json')}")
        else:
            raise EdgeBranchyError(f"{option} {out} is {describe(found)}; it would be replaced by "
                                   f"{describe(kind)} (`force` replaces only an earlier {kind}): "
                                   "choose another output")
    _probe_writable(out, option)
    return out


def refuse_symlink(out: Path, option: str = "`out`") -> None:
    """An output that is a symbolic link (dangling or not) is refused: writing through it would land
    wherever it points, and replacing it would not replace what the user sees there."""
    if os.path.islink(out):
        raise EdgeBranchyError(f"{option} {out} is a symbolic link; edgebranchy does not write through links: "
                               "name the real path")


def _check_overlap(out: Path, r_out: Path, inputs, option: str, inside_ok: bool) -> None:
    for inp in inputs:
        if inp is None:
            continue
        r_in = _resolved(inp)
        if inside_ok and r_out != r_in and _inside(r_out, r_in):
            continue
        if _inside(r_out, r_in) or _same_file(out, inp):
            how = "is" if r_out == r_in or _same_file(out, inp) else "lies inside"
            raise EdgeBranchyError(f"{option} {out} {how} the input {inp}: it would be overwritten; "
                                   "choose an output outside the inputs")
        if _inside(r_in, r_out):
            raise EdgeBranchyError(f"{option} {out} contains the input {inp}: replacing it would delete the "
                                   "input; choose another output")


def check_report_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], names: Iterable[str],
                        option: str = "`out`") -> Path:
    """A report is written into a folder (other files there stay): refuse a non-folder, a file name
    that is an input, and a report.md/report.html there that an edgebranchy report did not write."""
    from edgebranchy.util.kinds import REPORT_MARKER

    out = Path(out)
    refuse_symlink(out, option)
    found = what_is(out)
    if found not in ("missing", "other-dir", "report"):
        raise EdgeBranchyError(f"{option} {out} exists and is not a directory ({describe(found)}); "
                               "choose another output")
    r_inputs = {_resolved(i): i for i in inputs}
    for name in names:
        hit = r_inputs.get(_resolved(out / name))
        if hit is not None:
            raise EdgeBranchyError(f"{option} {out}: writing {name} there would overwrite the input {hit}; "
                                   "choose another output")
    if found == "other-dir":
        for name in ("report.md", "report.html"):
            if (out / name).exists():
                raise EdgeBranchyError(f"{option} {out} holds a {name} that an edgebranchy report did not write "
                                       f"(no {REPORT_MARKER}); choose another output or remove it")
    _probe_writable(out / "report.md", option)
    return out


def write_error(path: str | os.PathLike, e: OSError) -> EdgeBranchyError:
    """The one-line error for a failed write of `path`."""
    name = e.filename if isinstance(e.filename, str) and e.filename else str(path)
    hint = ""
    if e.errno == errno.ENOSPC:
        hint = " (free some space and run it again)"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = " (choose a writable output)"
    return EdgeBranchyError(f"cannot write {name}: {os_error_text(e)}{hint}")


def check_writable(path: str | os.PathLike, option: str = "the file") -> Path:
    """Refuse, before any work, a file the command will rewrite in place when its folder is not writable."""
    path = Path(path)
    _probe_writable(path, option)
    return path
