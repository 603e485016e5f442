"""Boards to deploy to: `user@host[:port]` targets and inventory files (TOML or a plain table)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from edgebranchy.errors import EdgeBranchyError

DEFAULT_WORKDIR = "~/.edgebranchy"
_HOST = re.compile(r"(?:(?P<user>[^@\s/:]+)@)?(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))"
                   r"(?::(?P<port>\d{1,5}))?")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# what an inventory may hold: data, never an option. A value starting with "-" would reach ssh (or
# the board's edgebranchy) as an option: -oProxyCommand=... runs a command on this machine.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|[0-9a-fA-F:.]{2,45}")
_PROFILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Board:
    """One board: how to reach it, which profile it measures with, where its files live there."""

    name: str            # local folder name, unique in one run
    host: str            # host name, address or ~/.ssh/config alias
    user: str | None = None
    port: int | None = None
    profile: str = "auto"
    workdir: str = DEFAULT_WORKDIR
    notes: str = ""

    def __post_init__(self) -> None:
        check_board_fields(self.host, self.user, self.profile, self.workdir)

    @property
    def destination(self) -> str:
        """What ssh gets as its destination argument."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def target(self) -> str:
        """The board as a user would type it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port else ''}"


def parse_target(text: str, *, profile: str = "auto", workdir: str = DEFAULT_WORKDIR, name: str | None = None,
                 notes: str = "") -> Board:
    """`user@host`, `host:2222`, `user@[fe80::1]:22` or an ssh_config alias -> Board."""
    m = _HOST.fullmatch(text.strip())
    if not m:
        raise EdgeBranchyError(f"cannot read target {text!r}: expected user@host[:port] or an ~/.ssh/config alias")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise EdgeBranchyError(f"target {text!r}: port {port} is out of range")
    host = m["v6"] or m["host"]
    default_name = host if port is None else f"{host}-{port}"
    return Board(name=_safe_name(name or default_name), host=host, user=m["user"], port=port,
                 profile=profile or "auto", workdir=workdir or DEFAULT_WORKDIR, notes=notes)


def check_board_fields(host: str, user: str | None, profile: str, workdir: str) -> None:
    """Refuse a host, user, profile or work directory that is not plain data (see the patterns above)."""
    for what, value, pattern, form in (("host", host, _HOSTNAME, "a host name, an address or an ssh_config alias"),
                                       ("user", user, _USER, "letters, digits, _ . - (not first)"),
                                       ("profile", profile, _PROFILE, "a profile name such as jetson-orin-nano")):
        if value is not None and not pattern.fullmatch(value):
            raise EdgeBranchyError(f"board {what} {value!r} is not {form}"
                                   + (" (a leading '-' would reach ssh as an option)" if value.startswith("-") else ""))
    if not workdir or workdir.startswith("-") or _CONTROL.search(workdir) or len(workdir) > 1024:
        raise EdgeBranchyError(f"board work directory {workdir!r} must be a path: not empty, no leading '-', "
                               "no control characters, at most 1024 characters")


def _safe_name(text: str) -> str:
    name = _UNSAFE.sub("_", text).strip("._") or "board"
    return name


def unique_names(boards: list[Board]) -> list[Board]:
    """Boards with distinct local folder names (a suffix -2, -3 where names repeat)."""
    seen: dict[str, int] = {}
    out = []
    for b in boards:
        n = seen.get(b.name, 0) + 1
        seen[b.name] = n
        if n > 1:
            b = replace(b, name=f"{b.name}-{n}")
        out.append(b)
    return out


def load_inventory(path: str | Path, *, profile: str = "auto", workdir: str = DEFAULT_WORKDIR) -> list[Board]:
    """Boards from an inventory file: `.toml` ([[board]] tables) or a table of `host profile notes...` lines."""
    from edgebranchy.util.readers import read_text

    p = Path(path)
    text = read_text(p, "inventory")
    boards = _from_toml(text, p, profile, workdir) if p.suffix == ".toml" else _from_table(text, p, profile, workdir)
    if not boards:
        raise EdgeBranchyError(f"inventory {p} lists no boards")
    return boards


_KEYS = {"host", "name", "profile", "workdir", "notes"}


def _from_toml(text: str, path: Path, profile: str, workdir: str) -> list[Board]:
    from edgebranchy.util.readers import parse_toml

    doc = parse_toml(text, f"inventory {path}", "inventory")
    defaults = doc.get("defaults", {})
    entries = doc.get("board", [])
    if not isinstance(defaults, dict) or not isinstance(entries, list) or \
            not all(isinstance(e, dict) for e in entries):
        raise EdgeBranchyError(f"inventory {path}: expected an optional [defaults] table and [[board]] tables")
    unknown = set(doc) - {"defaults", "board"}
    if unknown:
        raise EdgeBranchyError(f"inventory {path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    boards = []
    for i, entry in enumerate(entries, 1):
        e = {**defaults, **entry}
        bad = set(e) - _KEYS
        if bad:
            raise EdgeBranchyError(f"inventory {path}: board {i}: unknown key(s) {', '.join(sorted(bad))} "
                                   f"(known: {', '.join(sorted(_KEYS))})")
        if not all(isinstance(v, str) for v in e.values()):
            raise EdgeBranchyError(f"inventory {path}: board {i}: every value must be a string")
        if "host" not in e:
            raise EdgeBranchyError(f"inventory {path}: board {i} has no host")
        boards.append(parse_target(e["host"], profile=e.get("profile", profile), workdir=e.get("workdir", workdir),
                                   name=e.get("name"), notes=e.get("notes", "")))
    return boards


def _from_table(text: str, path: Path, profile: str, workdir: str) -> list[Board]:
    boards = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if parts[0].lower() == "host":  # a header row
            continue
        try:
            board = parse_target(parts[0], profile=parts[1] if len(parts) > 1 and parts[1] != "-" else profile,
                                 workdir=workdir, notes=parts[2] if len(parts) > 2 else "")
        except EdgeBranchyError as e:
            raise EdgeBranchyError(f"inventory {path}:{lineno}: {e}") from None
        boards.append(board)
    return boards
