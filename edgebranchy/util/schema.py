"""Declared schemas for parsed JSON/TOML documents, and the one checker every reader uses.

A schema is a tree of specs: `Num`, `Int`, `Str`, `Bool`, `List`, `Obj`, `Nullable`, `Anything`, `OneOf`.
`check(value, schema, where)` walks the value with a stack (never recursion) and raises one
EdgeBranchyError naming `where`, the dotted key and what was expected, e.g.
  results file r.json: key 'runs[0].gains.p50.gain' should be a number or null, got a string
"""
from __future__ import annotations

import math
from typing import Any, Dict, List as _List, Optional, Sequence, Tuple

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int, is_number


def type_name(value: Any) -> str:
    """What a parsed value is, in words (JSON's vocabulary)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Spec:
    """One node of a schema: `want` in words; `problem(value)` the reason it fails, or None."""
    want = "a value"

    def problem(self, value: Any) -> Optional[str]:
        return None

    def children(self, value: Any, at: str) -> Sequence[Tuple[Any, "Spec", str]]:
        return ()


class Anything(Spec):
    want = "any value"


class Num(Spec):
    def __init__(self, minimum: Optional[float] = None, maximum: Optional[float] = None, integer: bool = False):
        self.minimum, self.maximum, self.integer = minimum, maximum, integer
        self.want = "an integer" if integer else "a number"

    def problem(self, value: Any) -> Optional[str]:
        if not (is_int(value) if self.integer else is_number(value)):
            return f"should be {self.want}, got {type_name(value)}"
        if not math.isfinite(value):
            return f"is {value}; it must be finite"
        if self.minimum is not None and value < self.minimum:
            return f"is {value}; it must be >= {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"is {value}; it must be <= {self.maximum}"
        return None


def Int(minimum: Optional[int] = None, maximum: Optional[int] = None) -> Num:
    return Num(minimum, maximum, integer=True)


class Str(Spec):
    want = "a string"

    def __init__(self, choices: Optional[Sequence[str]] = None, max_len: int = 1 << 16):
        self.choices, self.max_len = choices, max_len

    def problem(self, value: Any) -> Optional[str]:
        if not isinstance(value, str):
            return f"should be a string, got {type_name(value)}"
        if self.choices is not None and value not in self.choices:
            return f"is {value[:40]!r}; expected one of {', '.join(map(repr, self.choices))}"
        if len(value) > self.max_len:
            return f"is a string of {len(value):,} characters; at most {self.max_len:,}"
        return None


class Bool(Spec):
    want = "a boolean"

    def problem(self, value: Any) -> Optional[str]:
        return None if isinstance(value, bool) else f"should be a boolean, got {type_name(value)}"


class List(Spec):
    want = "a list"

    def __init__(self, item: Spec = Anything(), min_len: int = 0, max_len: Optional[int] = None):
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def problem(self, value: Any) -> Optional[str]:
        if not isinstance(value, list):
            return f"should be a list, got {type_name(value)}"
        if len(value) < self.min_len:
            return f"has {len(value)} entries; at least {self.min_len}"
        if self.max_len is not None and len(value) > self.max_len:
            return f"has {len(value)} entries; at most {self.max_len}"
        return None

    def children(self, value: Any, at: str) -> Sequence[Tuple[Any, Spec, str]]:
        return [(v, self.item, f"{at}[{i}]") for i, v in enumerate(value)]


class Obj(Spec):
    """An object with `required` and `optional` keys (others allowed unless `closed`)."""
    want = "an object"

    def __init__(self, required: Optional[Dict[str, Spec]] = None, optional: Optional[Dict[str, Spec]] = None,
                 closed: bool = False, values: Optional[Spec] = None):
        self.required, self.optional = required or {}, optional or {}
        self.closed, self.values = closed, values

    def problem(self, value: Any) -> Optional[str]:
        if not isinstance(value, dict):
            return f"should be an object, got {type_name(value)}"
        for key in self.required:
            if key not in value:
                return f"misses the key '{key}'"
        if self.closed:
            extra = [k for k in value if k not in self.required and k not in self.optional]
            if extra:
                return f"has an unknown key {str(extra[0])[:40]!r}"
        return None

    def children(self, value: Any, at: str) -> Sequence[Tuple[Any, Spec, str]]:
        out = []
        for key, v in value.items():
            spec = self.required.get(key) or self.optional.get(key) or self.values
            if spec is not None:
                out.append((v, spec, f"{at}.{key}" if at else str(key)))
        return out


class Nullable(Spec):
    def __init__(self, spec: Spec):
        self.spec = spec
        self.want = f"{spec.want} or null"

    def problem(self, value: Any) -> Optional[str]:
        if value is None:
            return None
        p = self.spec.problem(value)
        return None if p is None else p.replace(f"should be {self.spec.want},", f"should be {self.want},")

    def children(self, value: Any, at: str) -> Sequence[Tuple[Any, Spec, str]]:
        return () if value is None else self.spec.children(value, at)


class OneOf(Spec):
    """The first of `specs` whose own check passes applies."""

    def __init__(self, *specs: Spec):
        self.specs = specs
        self.want = " or ".join(s.want for s in specs)

    def _match(self, value: Any) -> Optional[Spec]:
        return next((s for s in self.specs if s.problem(value) is None), None)

    def problem(self, value: Any) -> Optional[str]:
        return None if self._match(value) else f"should be {self.want}, got {type_name(value)}"

    def children(self, value: Any, at: str) -> Sequence[Tuple[Any, Spec, str]]:
        spec = self._match(value)
        return () if spec is None else spec.children(value, at)


def problems(value: Any, schema: Spec, at: str = "") -> _List[str]:
    """The first problem of `value` against `schema` as ["key 'a.b' ..."] (empty when it conforms)."""
    stack = [(value, schema, at)]
    while stack:
        v, spec, here = stack.pop()
        p = spec.problem(v)
        if p is not None:
            return [f"key '{here}' {p}" if here else p]
        stack.extend(reversed(spec.children(v, here)))
    return []


def check(value: Any, schema: Spec, where: str, at: str = "") -> Any:
    """`value` when it conforms to `schema`; else one EdgeBranchyError: '`where`: key 'a.b' ...'."""
    found = problems(value, schema, at)
    if found:
        raise EdgeBranchyError(f"{where}: {found[0]}")
    return value
