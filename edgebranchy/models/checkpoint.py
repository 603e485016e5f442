"""Checkpoints: weights and a JSON config, loadable with torch.load(weights_only=True).

Layout: {"format": "edgebranchy.checkpoint", "version": 1, "config": <JSON text>,
"branchy": state_dict, "baseline": state_dict of the main path}. No pickled objects.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.files import atomic_write_bytes

FORMAT = "edgebranchy.checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: config dict and the two state dicts."""

    path: Path
    config: dict
    branchy_state: dict
    baseline_state: dict

    def build(self):
        """(BranchyNet with trained weights, separately trained baseline as a BranchyNet's main path)."""
        from edgebranchy.models.registry import build_model, model_names

        name, args = self.config["model"]["name"], self.config["model"].get("args")
        if name not in model_names() and os.environ.get("EDGEBRANCHY_TRUST_MODEL_CODE") != "1":
            raise EdgeBranchyError(
                f"{self.path}: the checkpoint names the model factory {name!r}, which is not a zoo network; "
                "building it imports and runs that code. If you trust this checkpoint, set "
                "EDGEBRANCHY_TRUST_MODEL_CODE=1")
        net = build_model(name, args)
        _load(net, self.branchy_state, self.path, "BranchyNet")
        base = build_model(name, args)
        try:
            missing, unexpected = base.load_state_dict(self.baseline_state, strict=False)
        except RuntimeError as e:
            raise EdgeBranchyError(f"{self.path}: baseline weights do not fit the model: "
                                   f"{str(e).splitlines()[0]}") from None
        if unexpected or any(k.startswith("stages.") or k.startswith(f"exits.{base.num_exits - 1}.") for k in missing):
            raise EdgeBranchyError(f"{self.path}: baseline weights do not fit the model "
                                   f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        net.eval()
        base.eval()
        return net, base.baseline().eval()


def _load(net, state, path, what) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise EdgeBranchyError(f"{path}: {what} weights do not fit the model in the config: {first}") from None


def save_checkpoint(path: str | os.PathLike, config: dict, branchy_state: dict, baseline_state: dict) -> Path:
    """Write a checkpoint atomically."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "config": json.dumps(config, allow_nan=False),
                "branchy": branchy_state, "baseline": baseline_state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and validate a checkpoint (weights only: no code runs while loading)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgeBranchyError(f"checkpoint not found: {path}")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - damaged files raise KeyError, struct.error, ... too
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EdgeBranchyError(f"{path}: not a readable edgebranchy checkpoint ({msg[:200]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise EdgeBranchyError(f"{path}: not an edgebranchy BranchyNet checkpoint (no '{FORMAT}' header); "
                               "train one with `edgebranchy train`")
    if obj.get("version") != VERSION:
        raise EdgeBranchyError(f"{path}: checkpoint version {obj.get('version')} is not supported (expected {VERSION})")
    try:
        config = json.loads(obj["config"])
        branchy, baseline = obj["branchy"], obj["baseline"]
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise EdgeBranchyError(f"{path}: damaged checkpoint ({e})") from None
    model = config.get("model") if isinstance(config, dict) else None
    if (not isinstance(model, dict) or not isinstance(model.get("name"), str)
            or not isinstance(model.get("args", {}), dict) or not isinstance(branchy, dict)
            or not isinstance(baseline, dict)):
        raise EdgeBranchyError(f"{path}: damaged checkpoint (config or weights missing)")
    return Checkpoint(path, config, branchy, baseline)


def update_config(path: str | os.PathLike, **updates) -> dict:
    """Rewrite a checkpoint with config keys replaced (atomically); returns the new config."""
    ck = load_checkpoint(path)
    ck.config.update(updates)
    save_checkpoint(path, ck.config, ck.branchy_state, ck.baseline_state)
    return ck.config
