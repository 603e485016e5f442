"""Typed backend options, declared once per backend: default, bounds, CLI flag and profile key.

A backend class lists its `OPTIONS`; the runner validates what it is given against
them, the CLI builds its flags from them and bench fills them from the profile's
[runtime] table. Standard library only, so the CLI can build its parser cheaply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int
from edgebranchy.util.limits import limit, reason


@dataclass(frozen=True)
class BackendOption:
    """One backend option. `kind` is "int", "bool", "str" or "strings" (a list of strings)."""

    name: str
    kind: str
    default: Any
    help: str = ""
    minimum: int | None = None          # "int" only
    bound: str | None = None            # "int" only: its largest value is this bound of util/limits.py
    choices: tuple[str, ...] = ()       # "str" only: the allowed values (empty: any string)
    nullable: bool = False              # None is allowed (and means "not set")
    flag: str | None = None             # the CLI flag (`--threads`), if the CLI offers one
    profile_key: str | None = None      # the key in a device profile's [runtime] table that sets it

    def check(self, value: Any, backend: str) -> Any:
        """`value` if it has this option's type and bounds; EdgeBranchyError otherwise."""
        if value is None and self.nullable:
            return value
        if self.kind == "int" and self.bound is not None and is_int(value) and value > limit(self.bound):
            raise EdgeBranchyError(f"{backend} option {self.name} must be at most {limit(self.bound)} "
                                   f"({reason(self.bound)}), got {value!r}")
        ok = {"int": lambda v: is_int(v) and (self.minimum is None or v >= self.minimum),
              "bool": lambda v: isinstance(v, bool),
              "str": lambda v: isinstance(v, str) and (not self.choices or v in self.choices),
              "strings": lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v)}[self.kind]
        if not ok(value):
            raise EdgeBranchyError(f"{backend} option {self.name} must be {self.describe()}, got {value!r}")
        return list(value) if self.kind == "strings" else value

    def describe(self) -> str:
        if self.kind == "int":
            what = "an integer" + ("" if self.minimum is None else f" >= {self.minimum}")
        elif self.kind == "bool":
            what = "true or false"
        elif self.kind == "str":
            what = f"one of {', '.join(self.choices)}" if self.choices else "a string"
        else:
            what = "a list of strings"
        return what + (" (or unset)" if self.nullable else "")


def resolve_options(declared: Sequence[BackendOption], given: dict | None, backend: str) -> dict:
    """Defaults overridden by `given`, every value checked; unknown names are refused."""
    known = {o.name: o for o in declared}
    unknown = sorted(set(given or {}) - set(known))
    if unknown:
        raise EdgeBranchyError(f"unknown {backend} option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    out = {o.name: list(o.default) if o.kind == "strings" else o.default for o in declared}
    for name, value in (given or {}).items():
        out[name] = known[name].check(value, backend)
    return out


def profile_options(declared: Sequence[BackendOption], runtime: Any) -> dict:
    """The options a profile's [runtime] table sets (`runtime` has them as attributes)."""
    return {o.name: getattr(runtime, o.profile_key) for o in declared if o.profile_key}


def add_cli_flags(parser: Any, backends: Iterable[tuple[str, Sequence[BackendOption]]]) -> None:
    """One argparse flag per option that declares one (a bool takes on/off)."""
    for backend, declared in backends:
        for o in declared:
            if o.flag is None:
                continue
            kw: dict[str, Any] = {"dest": _dest(o), "default": None, "help": f"{o.help} ({backend} backend)"}
            if o.kind in ("int", "str") and not o.choices:
                kw["metavar"] = o.name.upper()
            if o.kind == "bool":
                kw["choices"] = ["on", "off"]
            elif o.kind == "int":
                kw["type"] = _int_flag(o.minimum, o.bound)
            elif o.choices:
                kw["choices"] = list(o.choices)
            parser.add_argument(o.flag, **kw)


def cli_options(args: Any, backend: str, backends: Iterable[tuple[str, Sequence[BackendOption]]]) -> dict:
    """The options given as CLI flags, for `backend`; a flag of another backend is refused."""
    out: dict[str, Any] = {}
    for name, declared in backends:
        for o in declared:
            value = getattr(args, _dest(o), None) if o.flag else None
            if value is None:
                continue
            if name != backend:
                raise EdgeBranchyError(f"{o.flag} is an option of the {name} backend, not of {backend}")
            out[o.name] = (value == "on") if o.kind == "bool" else value
    return out


def _int_flag(minimum: int | None, bound: str | None = None):
    """An argparse type: a whole number >= minimum (and at most the bound `bound`), refused at parse time."""
    import argparse

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if minimum is not None and v < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text}")
        if bound is not None and v > limit(bound):
            raise argparse.ArgumentTypeError(f"must be at most {limit(bound)} ({reason(bound)}), got {text}")
        return v

    parse.__name__ = "int"
    return parse


def _dest(o: BackendOption) -> str:
    return "backend_opt_" + o.flag.lstrip("-").replace("-", "_")
