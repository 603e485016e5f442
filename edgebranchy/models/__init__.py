"""BranchyNet models (needs torch)."""
from edgebranchy.models.branchynet import Baseline, BranchyNet, Segment
from edgebranchy.models.custom import default_head, from_sequential
from edgebranchy.models.fx import from_model
from edgebranchy.models.registry import build_model, model_names

__all__ = ["Baseline", "BranchyNet", "Segment", "build_model", "default_head", "from_model", "from_sequential",
           "model_names"]
