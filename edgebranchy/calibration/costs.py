"""What reaching each exit costs: MACs counted from the model or recorded in a manifest, or latencies that
`edgebranchy bench` measured per segment (a results file)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from edgebranchy.errors import EdgeBranchyError

#: the cost spec for multiply-accumulates (the record's historical key; the CLI says "macs")
MACS = "flops"


@dataclass(frozen=True)
class Costs:
    """Per-segment costs, the baseline's, where they come from, and each head's own share where it is known
    (then a side exit can be switched off and its head fused away; measured latencies do not split it out)."""

    segment: List[float]
    baseline: float
    source: str
    head: Optional[List[float]] = None


def model_costs(net, input_shape) -> Costs:
    """MACs counted from a BranchyNet (needs torch)."""
    from edgebranchy.models.summary import summarize

    s = summarize(net, tuple(input_shape))
    return Costs([float(r["segment_macs"]) for r in s["exits"]], float(s["baseline_macs"]),
                 "flops (MACs counted from the model)", [float(r["head_macs"]) for r in s["exits"]])


def manifest_costs(art) -> Costs:
    """MACs an artifact's manifest records per (kept) segment and for the baseline."""
    try:
        seg = [float(s["macs"]) for s in art.manifest["segments"]]
        base = float(art.manifest["baseline"]["macs"])
    except (KeyError, TypeError, ValueError):
        raise EdgeBranchyError(f"{art.root}: the manifest records no per-segment MACs; pass `cost` "
                               "RESULTS.json from `edgebranchy bench`") from None
    return Costs(seg, base, "flops (MACs recorded in the artifact manifest)")


def results_costs(path: str | Path, num_exits: int) -> Costs:
    """Per-segment latency and the baseline's p50 latency that `edgebranchy bench` measured (a results file).

    Both are per call at the bench's batch size, so their ratios are what counts. A sweep: its first run.
    """
    from edgebranchy.artifact.results import runs_of, validate_results
    from edgebranchy.util.readers import load_json

    r = load_json(path, "results")
    try:
        validate_results(r, str(path))
    except EdgeBranchyError as e:
        raise EdgeBranchyError(f"{path}: not an edgebranchy results file with per-segment latencies ({e})") from None
    runs = runs_of(r)
    r = runs[0]  # a sweep: its first run (the smallest batch size it measured first)
    seg = [float(v) for v in r["variants"]["branchy"]["segment_latency_ms"]]   # the validator checked the keys
    base = float(r["variants"]["baseline"]["latency_ms"]["p50"])
    bs = r["config"]["batch_size"]
    if len(seg) != num_exits:
        raise EdgeBranchyError(f"{path}: has {len(seg)} segment latencies, the model has {num_exits} exits")
    env = r.get("environment", {})
    desc = f"latency measured by bench on {env.get('profile', '?')} ({env.get('backend', '?')}, batch {bs}): {path}" + (
        f" (run {r['id']} of {len(runs)})" if len(runs) > 1 else "")
    return Costs(seg, base, desc)


def resolve_costs(spec: str, source) -> Costs:
    """`spec` is MACS (the source's own MAC counts) or the path of a bench results file."""
    return source.mac_costs() if spec == MACS else results_costs(spec, source.num_exits)
