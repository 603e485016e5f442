"""Checkpoints: weights and a JSON config, loadable with torch.load(weights_only=True).

Layout: {"format": "edgebranchy.checkpoint", "version": 1, "config": <JSON text>,
"branchy": state_dict, "baseline": state_dict of the main path}. No pickled objects.
"""
from __future__ import annotations

import io
import json
import os
import re
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
        from edgebranchy.models.registry import PLANNED, build_model, model_names

        name, args = self.config["model"]["name"], self.config["model"].get("args")
        if name == PLANNED:  # a planned network runs its backbone's factory: the same trust rule
            back = (args or {}).get("backbone") if isinstance(args, dict) else None
            if not isinstance(back, str) or ":" in back:
                check_trusted(str(back), self.path)
        elif name not in model_names():
            check_trusted(name, self.path)
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


TRUST_VAR = "EDGEBRANCHY_TRUST_MODEL_CODE"
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def trusted_modules() -> list[str]:
    """The modules whose factories a checkpoint may name: $EDGEBRANCHY_TRUST_MODEL_CODE, comma-separated."""
    raw = os.environ.get(TRUST_VAR, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if not _MODULE.fullmatch(n)]
    if bad:
        raise EdgeBranchyError(
            f"{TRUST_VAR}={raw!r}: {bad[0]!r} is not a module name; name the modules whose factories you trust, "
            f"e.g. {TRUST_VAR}=mynets (or mynets,lab.models); trusting every module ('1') is not possible")
    return names


def check_trusted(name: str, path: Any) -> None:
    """Refuse a checkpoint's `module:function` factory unless its module is one the user named as trusted.

    Building a model imports and runs its factory's module: a checkpoint someone sends could name
    `os:system`. Trust covers a named module and its submodules, nothing else.
    """
    module, sep, fn = name.partition(":")
    if not sep or not _MODULE.fullmatch(module) or not fn.isidentifier():
        raise EdgeBranchyError(f"{path}: the checkpoint names the model {name!r}, which is neither a zoo network "
                               "nor module:function")
    trusted = trusted_modules()
    if not any(module == t or module.startswith(t + ".") for t in trusted):
        now = f" (trusted now: {', '.join(trusted)})" if trusted else ""
        raise EdgeBranchyError(
            f"{path}: the checkpoint names the model factory {name!r}, which is not a zoo network; building it "
            f"imports and runs module {module!r}{now}. If you trust that code, set {TRUST_VAR}={module.split('.')[0]}")


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
    obj: Any = torch_load(path, "checkpoint", "edgebranchy checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise EdgeBranchyError(f"{path}: not an edgebranchy BranchyNet checkpoint (no '{FORMAT}' header); "
                               "train one with `edgebranchy train`")
    if obj.get("version") != VERSION:
        raise EdgeBranchyError(f"{path}: checkpoint version {obj.get('version')} is not supported (expected {VERSION})")
    from edgebranchy.util.readers import parse_json

    if not isinstance(obj.get("config"), str) or "branchy" not in obj or "baseline" not in obj:
        raise EdgeBranchyError(f"{path}: damaged checkpoint (config or weights missing)")
    config = parse_json(obj["config"], f"{path}: damaged checkpoint config", "checkpoint")
    branchy, baseline = obj["branchy"], obj["baseline"]
    model = config.get("model") if isinstance(config, dict) else None
    if (not isinstance(model, dict) or not isinstance(model.get("name"), str)
            or not isinstance(model.get("args", {}), dict) or not isinstance(branchy, dict)
            or not isinstance(baseline, dict)):
        raise EdgeBranchyError(f"{path}: damaged checkpoint (config or weights missing)")
    validate_config(path, config)
    return Checkpoint(path, config, branchy, baseline)


def torch_load(path: Path, kind: str, what: str, device: Any = "cpu", damaged: str | None = None) -> Any:
    """The one torch.load of the package: a regular zip file of `kind` (util/readers: size, members, deflate
    streams checked first), weights only; every failure one EdgeBranchyError (`damaged` leads it)."""
    import torch

    from edgebranchy.util.readers import check_zip

    try:
        check_zip(path, kind)
    except EdgeBranchyError as e:
        if not Path(path).exists():
            raise
        raise EdgeBranchyError(f"{path}: {damaged or f'not a readable {what}'} ({e})") from None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - damaged files raise KeyError, struct.error, ... too
        raise EdgeBranchyError(load_refusal(path, what, e, damaged)) from None


def _config_schema() -> Any:
    """The declared schema of the config blocks that commands read beyond input, classes and calibration."""
    from edgebranchy.util.schema import Bool, Int, List, Nullable, Num, Obj, OneOf, Str

    split = Obj({"version": Int()}, {"limit": Nullable(Int(1)), "val_size": Nullable(Int(0)), "seed": Int(0),
                                     "sources_sha256": Nullable(Str()), "val_index_sha256": Nullable(Str())})
    dataset = Obj({"name": Str()}, {"source": Nullable(Str()), "train": Int(0), "val": Nullable(Int(0)),
                                    "test": Int(0), "split_seed": Int(0), "input_shape": List(Int(1)),
                                    "image": Nullable(Obj()), "split": Nullable(split)})
    train = Obj({}, {"model": Str(), "model_args": Obj(), "dataset": Nullable(Str()), "data_dir": Nullable(Str()),
                     "epochs": Int(0), "baseline_epochs": Nullable(Int(0)), "batch_size": Int(1), "lr": Num(0),
                     "betas": List(Num(0, 1), 2, 2), "weight_decay": Num(0), "exit_weights": Nullable(List(Num(0))),
                     "seed": Int(0), "val_size": Nullable(Int(0)), "limit": Nullable(Int(1)),
                     "max_steps": Nullable(Int(0)), "device": Nullable(Str()), "recipe": Nullable(Str()),
                     "eval_batch": Int(1), "log_every": Int(0), "image": Nullable(Obj()), "freeze_backbone": Bool(),
                     "init_weights": Nullable(OneOf(Str(), Obj())), "init_skip": Nullable(List(Str())), "world_size": Int(1),
                     "seconds": Num(0), "history": List(Obj())})
    evaluation = Obj({}, {"exit_accuracy": List(Nullable(Num(0, 1))), "n": Int(0),
                          "baseline_accuracy": Nullable(Num(0, 1))})
    return Obj({"model": Obj({"name": Str()}, {"args": Obj()})},
               {"dataset": Nullable(dataset), "train": Nullable(train), "validation": Nullable(evaluation),
                "test": Nullable(evaluation), "seed": Nullable(Int(0)), "versions": Nullable(Obj())})


def load_refusal(path, what: str, e: BaseException, damaged: str | None = None) -> str:
    """One line for a file torch.load(weights_only=True) refused or could not read.

    torch's own message for a pickle with code in it advises re-running with weights_only=False;
    that advice is wrong for a file from an unknown source, so it is replaced, not passed on."""
    import re

    text = str(e)
    lead = damaged or f"not a readable {what}"
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return (f"{path}: {lead}: refused, it holds a pickled {found.group(1)} (not a tensor), which could "
                    "run code when loaded; edgebranchy loads weights only and did not run it")
        detail = next((line.strip() for line in text.splitlines()[1:] if line.strip()
                       and "weights_only" not in line and "torch.load" not in line), "not a weights-only file")
        return f"{path}: {lead} ({detail[:200]})"
    first = (text.splitlines() or [type(e).__name__])[0] if text else type(e).__name__
    return f"{path}: {lead} ({first[:200]})"


def validate_config(path, config: dict) -> None:
    """Type and range of the config fields that calibration, export and the runner read."""
    from edgebranchy.artifact.manifest_fields import validate_classes, validate_input_block, validate_temperatures
    from edgebranchy.util.checks import validate_thresholds

    from edgebranchy.util.schema import check

    where = f"{path}: checkpoint config"
    check(config, _config_schema(), where)
    if "input" not in config:
        raise EdgeBranchyError(f"{where} has no 'input' block (shape and normalisation); re-train the checkpoint")
    validate_input_block(where, config["input"])
    if "classes" not in config:
        raise EdgeBranchyError(f"{where} has no 'classes' list")
    validate_classes(where, config["classes"])
    cal = config.get("calibration")
    if cal is None:
        return
    if not isinstance(cal, dict):
        raise EdgeBranchyError(f"{where}: 'calibration' must be an object or null")
    validate_thresholds(cal.get("thresholds"), where=f"{where}: calibration.thresholds")
    validate_temperatures(where, cal.get("temperatures"), "calibration.temperatures")
    if not isinstance(cal.get("normalized", False), bool):
        raise EdgeBranchyError(f"{where}: 'calibration.normalized' must be true or false")


def update_config(path: str | os.PathLike, **updates) -> dict:
    """Rewrite a checkpoint with config keys replaced (atomically); returns the new config."""
    ck = load_checkpoint(path)
    ck.config.update(updates)
    save_checkpoint(path, ck.config, ck.branchy_state, ck.baseline_state)
    return ck.config
