"""Argument types shared by the subcommands (standard library only).

Each type refuses a value outside its range with an argparse error, which the
parser prints as one line naming the option: every option is checked before any
work starts.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Callable

from edgebranchy.util.limits import limit, reason

SEED_MAX = 2**32 - 1  # numpy's seed range; torch accepts it too


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def int_range(low: int | None = None, high: int | None = None, what: str | None = None,
              why: str | None = None) -> Callable[[str], int]:
    """An argparse type for whole numbers in [low, high]; `why` is the reason for `high`, said when it is passed."""
    rng = what or (f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}")

    def parse(text: str) -> int:
        v = _integer(text)
        if why is not None and high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be at most {high} ({why}), got {text}")
        if (low is not None and v < low) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be {rng}, got {text}")
        return v

    parse.__name__ = "int"
    return parse


def bounded_int(low: int, name: str) -> Callable[[str], int]:
    """Whole numbers from `low` to the bound `name` of util/limits.py (its reason said when passed)."""
    return int_range(low, int(limit(name)), what=f"a whole number >= {low}", why=reason(name))


def bounded_seconds(low_open: bool = False) -> Callable[[str], float]:
    """Seconds: a finite number >= 0 (> 0 with `low_open`) and at most the bound of util/limits.py."""
    high = limit("seconds")

    def parse(text: str) -> float:
        v = positive_float(text) if low_open else nonneg_float(text)
        if v > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g} seconds ({reason('seconds')}), got {text}")
        return v

    parse.__name__ = "float"
    return parse


positive_int = int_range(1, what="a whole number >= 1")
nonneg_int = int_range(0, what="a whole number >= 0")
seed = int_range(0, SEED_MAX)
batch_size = bounded_int(1, "batch")
samples = bounded_int(1, "samples")
trials = bounded_int(1, "trials")


def resnet_depth(text: str) -> int:
    """A ResNet depth 6n+2 with n >= 1 (8, 20, 32, ..., 110)."""
    v = _integer(text)
    if v < 8 or (v - 2) % 6:
        raise argparse.ArgumentTypeError(f"must be a depth 6n+2 with n >= 1 (8, 20, 32, 44, 56, 110), got {text}")
    if v > limit("resnet_depth"):
        raise argparse.ArgumentTypeError(f"must be at most {limit('resnet_depth')} ({reason('resnet_depth')}), "
                                         f"got {text}")
    return v


def finite_float(text: str) -> float:
    """Any finite number (not nan or inf)."""
    v = _number(text)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _number(text)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    v = _number(text)
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def fraction(text: str) -> float:
    """A number in (0, 1]."""
    v = _number(text)
    if not (0 < v <= 1):
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return v


def probability(text: str) -> float:
    """A number in [0, 1]."""
    v = _number(text)
    if not (0 <= v <= 1):
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return v


def percentage_points(text: str) -> float:
    """A number of accuracy points in [0, 100]."""
    v = _number(text)
    if not (0 <= v <= 100):
        raise argparse.ArgumentTypeError(f"must be a number of percentage points from 0 to 100, got {text}")
    return v


def floats(text: str) -> list[float]:
    """'0.1,0.2' -> [0.1, 0.2]; argparse reports anything else as a usage error."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def thresholds(text: str) -> list[float]:
    """Entropy thresholds: comma-separated finite numbers >= 0 (0 switches an exit off)."""
    vs = floats(text)
    if not all(math.isfinite(v) and v >= 0 for v in vs):
        raise argparse.ArgumentTypeError(f"thresholds must be finite numbers >= 0, got {text!r}")
    return vs


def exit_weights(text: str) -> list[float]:
    """Loss weights per exit: finite numbers >= 0, at least one > 0."""
    vs = floats(text)
    if not all(math.isfinite(v) and v >= 0 for v in vs) or not any(v > 0 for v in vs):
        raise argparse.ArgumentTypeError(f"weights must be finite numbers >= 0, at least one > 0, got {text!r}")
    return vs


def betas(text: str) -> list[float]:
    """Adam betas: two numbers in [0, 1)."""
    vs = floats(text)
    if len(vs) != 2 or not all(0 <= v < 1 for v in vs):
        raise argparse.ArgumentTypeError(f"takes two numbers in [0, 1), e.g. 0.9,0.999; got {text!r}")
    return vs


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def device(text: str) -> str:
    """A torch device name: cpu, cuda or cuda:N (availability is checked when the command starts)."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    return text


_NO_DEFAULT_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
                       argparse._AppendConstAction, argparse._CountAction, argparse._HelpAction,
                       argparse._VersionAction)


def comma_list(kind: str, parse):
    """An argument type: one value or a comma list of them (each parsed by `parse`, repeats dropped)."""
    def parse_list(text: str) -> list:
        items = [t.strip() for t in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"expected {kind} or a comma list of them, got {text!r}")
        out = []
        for t in items:
            v = parse(t)
            if v not in out:
                out.append(v)
        return out

    parse_list.__name__ = kind
    return parse_list


def _precision(text: str) -> str:
    from edgebranchy.vocab import PRECISION_AUTO, PRECISIONS

    if text not in PRECISIONS + (PRECISION_AUTO,):
        raise argparse.ArgumentTypeError(f"unknown precision {text!r}; choose {', '.join(PRECISIONS)} or "
                                         f"{PRECISION_AUTO}")
    return text


precisions = comma_list("precision", _precision)


def shown_default(action: argparse.Action) -> bool:
    """Whether help should append "(default: X)" for `action`: only a real default of an optional
    option that takes a value, and only when its help does not state the default itself."""
    if not action.option_strings or action.required or isinstance(action, _NO_DEFAULT_ACTIONS):
        return False
    d = action.default
    if d is None or d is argparse.SUPPRESS or d is False or d == [] or d == "":
        return False
    return "default" not in (action.help or "").lower()


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows an option's real default once: "(default: 128)" after the help text, never
    "(default: None)", never for a required option or a flag, and not when the help already says what
    the default is ("default: the profile's")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if text is not argparse.SUPPRESS and shown_default(action):
            text += " (default: %(default)s)"
        return text


class RawDefaultsFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """DefaultsFormatter for commands whose description and epilog are laid out by hand."""


def use_defaults_formatter(parser: argparse.ArgumentParser) -> None:
    """Give `parser` the defaults formatter (keeping a hand laid-out description raw)."""
    raw = issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    parser.formatter_class = RawDefaultsFormatter if raw else DefaultsFormatter


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, *, use: str | None = None,
                     flag: bool = False, **kwargs) -> None:
    """A hidden option `old` kept for old scripts: it sets `new`'s value (`flag`: True, taking no value), is not in
    --help, and when given says on stderr, in one line, what to use instead (`use`, default `new`)."""
    note = f"{parser.prog}: note: {old} is deprecated; use {use or new}"
    base = argparse._StoreTrueAction if flag else argparse._StoreAction

    class Deprecated(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            print(note, file=sys.stderr, flush=True)
            super().__call__(parser, namespace, values, option_string)

    parser.add_argument(old, dest=new.lstrip("-").replace("-", "_"), help=argparse.SUPPRESS, action=Deprecated,
                        **kwargs)


def deprecated(parser: argparse.ArgumentParser, what: str, use: str) -> None:
    """Say on stderr, in one line, that a spelling still works but `use` is what to write now."""
    print(f"{parser.prog}: note: {what} is deprecated; use {use}", file=sys.stderr, flush=True)




class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _declared() -> list[tuple[str, tuple]]:
    # the declarations only (standard library): building the parser loads no backend module and no numpy
    from edgebranchy.runtime.backends.declared import every_backend

    return every_backend()


def add_drift_flags(parser: argparse.ArgumentParser) -> None:
    """The exit-rate drift test's flags (predict and bench; exits/drift.py)."""
    parser.add_argument("--drift-alpha", type=probability, default=1e-3,
                        help="false-alarm level of the exit-rate drift test against the calibration")
    parser.add_argument("--drift-min-effect", type=percentage_points, default=3.0, metavar="POINTS",
                        help="smallest change of an exit's rate, in percentage points, that the drift test warns "
                             "about")


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """The CLI flags every backend declares (runtime/backends/declared.py)."""
    from edgebranchy.runtime.backends.options import add_cli_flags

    add_cli_flags(parser, _declared())


def backend_flag_options(args: argparse.Namespace, backend: str) -> dict:
    """The backend options given as flags, checked against `backend`'s declarations."""
    from edgebranchy.runtime.backends.options import cli_options

    return cli_options(args, backend, _declared())
