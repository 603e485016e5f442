"""edgebranchy: BranchyNet early-exit networks, from training to measured on-device runs."""
from edgebranchy.errors import EdgeBranchyError

__version__ = "0.1.0"
__all__ = ["EdgeBranchyError", "__version__"]
