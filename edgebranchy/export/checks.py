"""What a checkpoint must be before export writes anything: finite weights, one class name per logit (needs torch)."""
from __future__ import annotations

from edgebranchy.errors import EdgeBranchyError


def refuse_non_finite(checkpoint, nets: dict) -> None:
    """A graph with NaN or infinite weights is refused: its outputs cannot be trusted or checked."""
    import torch

    for what, net in nets.items():
        for name, t in net.state_dict().items():
            if torch.is_floating_point(t) and not bool(torch.isfinite(t).all()):
                raise EdgeBranchyError(f"{checkpoint}: {what} weight {name!r} holds NaN or infinite values; "
                                       "refusing to export it (retrain, or resume from an earlier state)")


def check_classes(checkpoint, cfg: dict, net) -> None:
    """The config's class list must name one class per logit of every exit."""
    import torch

    classes = cfg["classes"]
    with torch.no_grad():
        outs = net(torch.zeros((1, *cfg["input"]["shape"]), dtype=torch.float32))
    for k, o in enumerate(outs):
        if o.shape[-1] != len(classes):
            raise EdgeBranchyError(f"{checkpoint}: config 'classes' names {len(classes)} classes but exit {k} "
                                   f"has {o.shape[-1]} outputs")
