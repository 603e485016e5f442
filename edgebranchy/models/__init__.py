"""BranchyNet models (needs torch, imported on first use: the segment plan's arithmetic does not)."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Baseline": "edgebranchy.models.branchynet",
    "BranchyNet": "edgebranchy.models.branchynet",
    "default_head": "edgebranchy.models.custom",
    "from_sequential": "edgebranchy.models.custom",
    "build_model": "edgebranchy.models.registry",
    "model_names": "edgebranchy.models.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgebranchy.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
