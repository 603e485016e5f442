"""Build a BranchyNet from a JSON-serialisable spec: {"name": ..., "args": {...}}."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.branchynet import BranchyNet

_ZOO: dict[str, tuple[str, str]] = {
    "b-lenet": ("edgebranchy.models.zoo.lenet", "b_lenet"),
    "b-alexnet": ("edgebranchy.models.zoo.alexnet", "b_alexnet"),
    "b-resnet": ("edgebranchy.models.zoo.resnet", "b_resnet"),
}

DESCRIPTIONS = {
    "b-lenet": "LeNet, 1 side branch after conv1 (paper: MNIST, 5.4x CPU)",
    "b-alexnet": "AlexNet, 2 side branches after conv2 and conv3 (paper: CIFAR-10, 1.5x CPU)",
    "b-resnet": "ResNet 6n+2 (--depth, 110 in the paper), 2 side branches (paper: CIFAR-10, 1.9x CPU)",
}


def model_names() -> list[str]:
    return sorted(_ZOO)


#: the model a plan file describes (`train --plan`): a backbone split at the planned points (models/backbones.py)
PLANNED = "planned"


def factory(name: str) -> Callable[..., BranchyNet]:
    """The function `name` names: a zoo network, PLANNED, or a user's module:function."""
    if name == PLANNED:
        return importlib.import_module("edgebranchy.models.backbones").planned
    if name in _ZOO:
        mod, fn = _ZOO[name]
        return getattr(importlib.import_module(mod), fn)
    if ":" in name:  # "package.module:function" for a user's own network
        mod, _, fn = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise EdgeBranchyError(f"cannot import model factory {name!r}: {e}") from None
    raise EdgeBranchyError(f"unknown model {name!r}; choose one of {', '.join(model_names())} "
                           "or give module:function of your own factory")


#: the zoo's size arguments and their bounds in util/limits.py
_SIZES = {"input_size": "input_size", "in_channels": "channels", "num_classes": "classes", "depth": "resnet_depth"}


def check_sizes(name: str, args: dict) -> None:
    """A size argument past its bound is refused before any layer is allocated (a 30000-pixel input)."""
    from edgebranchy.util.limits import limit, reason

    for key, bound in _SIZES.items():
        v = args.get(key) if isinstance(args, dict) else None
        if isinstance(v, int) and not isinstance(v, bool) and v > limit(bound):
            raise EdgeBranchyError(f"model {name!r}: `{key}` must be at most {limit(bound)} ({reason(bound)}), "
                                   f"got {v}")


def build_model(name: str, args: dict[str, Any] | None = None) -> BranchyNet:
    """Instantiate a model from its name and keyword arguments (what a checkpoint records)."""
    check_sizes(name, args or {})
    try:
        net = factory(name)(**(args or {}))
    except TypeError as e:
        raise EdgeBranchyError(f"bad arguments for model {name!r}: {e}") from None
    except RuntimeError as e:  # layer sizes computed for an input the network cannot take
        raise EdgeBranchyError(f"model {name!r} cannot be built with {args or {}}: "
                               f"{str(e).splitlines()[0][:200]} (input too small for its layers?)") from None
    if not isinstance(net, BranchyNet):
        raise EdgeBranchyError(f"model factory {name!r} returned {type(net).__name__}, not a BranchyNet")
    return net
