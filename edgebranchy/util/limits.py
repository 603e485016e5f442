"""The largest value each user-given number may take, and why (standard library only).

Every number that sizes memory, threads, time or a model is bounded here once; the CLI's argument types
(cli/_args.py) and the library's config checks read the same bounds, so a value past one is refused, with
its reason, before any work starts (a batch of 10^12 samples, 100000 threads, a 30000-pixel input).
"""
from __future__ import annotations

#: name -> (largest value, why); names are what the messages say
LIMITS = {
    "batch": (1 << 16, "one call holds the whole batch in memory"),
    "samples": (10_000_000, "the samples are decoded into memory"),
    "trials": (10_000, "every trial is a measured window per variant"),
    "warmup": (1_000_000, "calls run before anything is measured"),
    "repeats": (1_000_000, "calls per measurement"),
    "threads": (1024, "more threads than a board has cores only slow it down"),
    "seconds": (7 * 24 * 3600.0, "a week"),
    "epochs": (100_000, "each epoch is a pass over the training data"),
    "steps": (1_000_000_000, "steps per phase"),
    "input_size": (1024, "the activations of a larger input take gigabytes per sample"),
    "channels": (4096, "channels of the input or of a layer"),
    "classes": (1_000_000, "one logit per class"),
    "resnet_depth": (1202, "the deepest ResNet of the paper's CIFAR table; deeper ones exhaust memory"),
    "rows": (100_000, "table rows printed"),
    "boards": (1024, "boards at a time, one ssh connection each"),
}


def limit(name: str) -> int | float:
    """The largest allowed value of `name`."""
    return LIMITS[name][0]


def reason(name: str) -> str:
    """Why `name` is bounded, for the message."""
    return LIMITS[name][1]


def check_whole(name: str, value, low: int, bound: str) -> None:
    """EdgeBranchyError naming the setting `name` (in backquotes, as library errors do) unless `value` is a whole
    number (not a bool) from `low` to the limit of `bound`."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.util.checks import is_int_at_least

    if not is_int_at_least(value, low):
        raise EdgeBranchyError(f"`{name}` must be a whole number >= {low}, got {value!r}")
    if value > limit(bound):
        raise EdgeBranchyError(f"`{name}` must be at most {limit(bound)} ({reason(bound)}), got {value!r}")
