"""Parameters and multiply-accumulates per stage and per exit head."""
from __future__ import annotations

import torch
from torch import nn

from edgebranchy.models.branchynet import BranchyNet


def count_macs(module: nn.Module, shape) -> tuple[int, tuple[int, ...]]:
    """MACs of convolutions and linear layers for one input of `shape`; returns (macs, output shape).

    `shape` may instead be an example input (a tensor, or the tuple of tensors a stage of
    from_model passes on); the output shape is then that of the output's first (main) tensor.
    """
    macs, out = _run_counting(module, shape)
    main = out[0] if isinstance(out, tuple) else out
    return macs, tuple(main.shape[1:])


def _run_counting(module: nn.Module, shape):
    """(MACs, output) of one call on zeros of `shape` or on the given example input."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            total += out.numel() * k
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            example = shape if isinstance(shape, (torch.Tensor, tuple)) and not _is_shape(shape) else \
                torch.zeros(1, *shape)
            out = module(example)
    finally:
        module.train(was)
        for h in handles:
            h.remove()
    return int(total), out


def _is_shape(s) -> bool:
    return isinstance(s, tuple) and all(isinstance(v, int) for v in s)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize(net: BranchyNet, input_shape: tuple[int, ...]) -> dict:
    """Per stage and exit: params, MACs, feature shape; cumulative cost of reaching each exit."""
    rows, cum = [], 0
    feats = torch.zeros(1, *input_shape)
    for k, (stage, head) in enumerate(zip(net.stages, net.exits)):
        sm, feats = _run_counting(stage, feats)  # the stage's whole output: from_model stages pass tuples
        hm, _ = _run_counting(head, feats)
        main = feats[0] if isinstance(feats, tuple) else feats
        shape = tuple(main.shape[1:])
        cum += sm + hm
        rows.append({"exit": k, "stage_params": params(stage), "stage_macs": sm, "head_params": params(head),
                     "head_macs": hm, "feature_shape": list(shape), "segment_macs": sm + hm,
                     "macs_to_exit": sum(r["stage_macs"] for r in rows) + sm + hm})
    base = sum(r["stage_macs"] for r in rows) + rows[-1]["head_macs"]
    return {"exits": rows, "baseline_macs": base,
            "baseline_params": sum(r["stage_params"] for r in rows) + rows[-1]["head_params"],
            "total_params": params(net)}


def format_summary(name: str, s: dict) -> str:
    lines = [f"{name}: {len(s['exits'])} exits, {s['total_params']:,} parameters; "
             f"baseline {s['baseline_macs'] / 1e6:.3f} M MACs, {s['baseline_params']:,} parameters",
             f"{'exit':>4} {'stage params':>13} {'stage MACs':>12} {'head params':>12} {'head MACs':>11} "
             f"{'MACs to exit':>13} {'of baseline':>11}  features"]
    for r in s["exits"]:
        lines.append(f"{r['exit']:>4} {r['stage_params']:>13,} {r['stage_macs']:>12,} {r['head_params']:>12,} "
                     f"{r['head_macs']:>11,} {r['macs_to_exit']:>13,} {r['macs_to_exit'] / s['baseline_macs']:>10.1%}"
                     f"  {'x'.join(map(str, r['feature_shape']))}")
    return "\n".join(lines)
