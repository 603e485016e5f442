"""Attribute strictness: every public name looked up on the fake `tensorrt` module, its classes or
their instances must exist in the claimed TensorRT version (see names.py), else AttributeError
(recorded as a violation, so a `hasattr` that swallows it still fails the test)."""
from __future__ import annotations

import types

from trt_double import state as st

_OURS = "trt_double"


def check(name: str, where: str) -> None:
    if name.startswith("_"):
        return
    s = st.current()
    s.accessed.add(name)
    if not s.allows(name):
        s.fail(f"TensorRT {s.version} has no attribute {name!r} (looked up on {where})", AttributeError)


def _defined_by_user(cls: type, name: str) -> bool:
    """True when `name` resolves to a class written outside the double (a user subclass, e.g. a logger)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return not klass.__module__.startswith(_OURS)
    return False


class StrictMeta(type):
    def __getattribute__(cls, name):
        if not name.startswith("_") and not _defined_by_user(cls, name):
            check(name, f"class {type.__getattribute__(cls, '__name__')}")
        return type.__getattribute__(cls, name)


class Strict(metaclass=StrictMeta):
    """Base of every fake TensorRT object. Internals use leading underscores."""

    def __getattribute__(self, name):
        if not name.startswith("_"):
            inst = object.__getattribute__(self, "__dict__")
            if name not in inst and not _defined_by_user(type(self), name):
                check(name, type(self).__name__)
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        cls = type(self)
        defined = any(name in k.__dict__ for k in cls.__mro__)
        user_instance = not cls.__module__.startswith(_OURS) and not defined
        if not name.startswith("_") and not user_instance and not _defined_by_user(cls, name):
            check(name, type(self).__name__)
            if not isinstance(getattr(type(self), name, None), property):
                st.current().fail(f"{type(self).__name__}.{name} cannot be set (not a settable TensorRT attribute)",
                                  AttributeError)
        object.__setattr__(self, name, value)


class StrictModule(types.ModuleType):
    def __getattribute__(self, name):
        if not name.startswith("_"):
            check(name, "module tensorrt")
        return types.ModuleType.__getattribute__(self, name)


class EnumValue(Strict):
    """A pybind11-style enum member: hashable, comparable, int()-able."""

    def __init__(self, owner: str, name: str, value: int):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_value", value)

    def __int__(self):
        return self._value

    __index__ = __int__

    def __eq__(self, other):
        return isinstance(other, EnumValue) and (self._owner, self._value) == (other._owner, other._value)

    def __hash__(self):
        return hash((self._owner, self._value))

    def __repr__(self):
        return f"<{self._owner}.{self._name}: {self._value}>"

    __str__ = lambda self: f"{self._owner}.{self._name}"  # noqa: E731


def make_enum(name: str, members: dict, module: str = "trt_double.fake_trt") -> type:
    """A strict enum class with `members` {NAME: value} as class attributes."""
    ns = {k: EnumValue(name, k, v) for k, v in members.items()}
    ns["__module__"] = module
    ns["_members"] = dict(members)
    return StrictMeta(name, (Strict,), ns)
