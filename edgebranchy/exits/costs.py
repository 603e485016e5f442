"""Where the cost of each segment comes from: MACs counted from the model, or a bench results file."""
from __future__ import annotations

from pathlib import Path

from edgebranchy.artifact.results import runs_of, validate_results
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.files import read_json


def costs_from_results(path: str | Path, num_exits: int) -> tuple[list[float], float, str]:
    """(per-segment latency, baseline latency, description) measured by `edgebranchy bench`.

    Both are per call at the bench's batch size, so their ratios are what counts.
    """
    r = read_json(path, "results file")
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
    return seg, base, desc
