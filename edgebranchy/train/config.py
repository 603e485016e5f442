"""What a training run is asked to do (`TrainConfig`), checked before any data is loaded, and the recipes."""
from __future__ import annotations

from dataclasses import dataclass, field

from edgebranchy.errors import EdgeBranchyError

RECIPES = {
    # chosen by measurement (a probe before the project, B-LeNet on Fashion-MNIST): 89.1% after
    # 10 epochs against 87.6% for the paper's recipe below
    "default": {"batch_size": 128, "betas": (0.9, 0.999)},
    # the paper's released code: under-trains B-LeNet in 10 epochs (87.6% vs 89.1%)
    "paper": {"batch_size": 512, "betas": (0.99, 0.999)},
}


@dataclass
class TrainConfig:
    model: str = "b-lenet"
    model_args: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    epochs: int = 10
    baseline_epochs: int | None = None  # None: same as epochs; 0: no separate baseline phase
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    exit_weights: list[float] | None = None  # None: 1.0 on side exits, 0.3 on the last (the paper)
    seed: int = 0
    val_size: int | None = None
    limit: int | None = None
    max_steps: int | None = None  # per phase, for bounded runs
    device: str = "cpu"
    recipe: str = "default"
    eval_batch: int = 1000
    log_every: int = 0  # print the running loss every N steps (0: per epoch only)
    image: dict | None = None  # image folder reader options (data/imagefolder.py)
    freeze_backbone: bool = False  # train only the side exit heads; no baseline phase
    init_weights: str | None = None  # a state_dict loaded into the main branch before training
    init_skip: list[str] | None = None  # module paths of the model that init_weights leaves as initialised


def validate_train_config(cfg: TrainConfig) -> None:
    """Every numeric training setting in range before any data is loaded (one line naming the setting)."""
    import math
    import re

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def fail(name: str, rng: str, v) -> None:
        raise EdgeBranchyError(f"{name} must be {rng}, got {v!r}")

    from edgebranchy.util.limits import limit, reason

    for name, low, bound in (("epochs", 1, "epochs"), ("baseline_epochs", 0, "epochs"), ("val_size", 1, "samples"),
                             ("limit", 1, "samples"), ("max_steps", 1, "steps"), ("batch_size", 1, "batch"),
                             ("eval_batch", 1, "batch")):
        v = getattr(cfg, name)
        if v is None and name not in ("epochs", "batch_size", "eval_batch"):
            continue
        if not is_int(v) or v < low:
            fail(name, f"a whole number >= {low}", v)
        if v > limit(bound):
            fail(name, f"at most {limit(bound)} ({reason(bound)})", v)
    if not is_num(cfg.lr) or cfg.lr <= 0:
        fail("lr", "a finite number > 0", cfg.lr)
    if not is_num(cfg.weight_decay) or cfg.weight_decay < 0:
        fail("weight_decay", "a finite number >= 0", cfg.weight_decay)
    b = list(cfg.betas) if isinstance(cfg.betas, (list, tuple)) else None
    if b is None or len(b) != 2 or not all(is_num(v) and 0 <= v < 1 for v in b):
        fail("betas", "two numbers in [0, 1)", cfg.betas)
    if cfg.exit_weights is not None:
        w = cfg.exit_weights
        if (not isinstance(w, (list, tuple)) or not all(is_num(v) and v >= 0 for v in w)
                or not any(v > 0 for v in w)):
            fail("exit_weights", "finite numbers >= 0, at least one > 0", w)
    if not is_int(cfg.seed) or not 0 <= cfg.seed <= 2**32 - 1:
        fail("seed", "a whole number from 0 to 4294967295", cfg.seed)
    if not is_int(cfg.log_every) or cfg.log_every < 0:
        fail("log_every", "a whole number >= 0", cfg.log_every)
    if not isinstance(cfg.device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", cfg.device):
        fail("device", "cpu, cuda or cuda:N", cfg.device)
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise EdgeBranchyError(f"device {cfg.device}: CUDA is not available on this machine; use cpu")
        idx = int(cfg.device.split(":")[1]) if ":" in cfg.device else 0
        if idx >= torch.cuda.device_count():
            raise EdgeBranchyError(f"device {cfg.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def default_exit_weights(k: int) -> list[float]:
    return [1.0] * (k - 1) + [0.3]


def model_args(cfg: TrainConfig, data) -> dict:
    """The model factory's arguments: the config's, with the data's channels, classes and (square) size."""
    args = dict(cfg.model_args)
    c, h, w = data.input_shape
    if cfg.model == "planned" and (args.get("in_channels"), args.get("input_size")) != (c, h):
        raise EdgeBranchyError(f"the plan is for {args.get('in_channels')}x{args.get('input_size')}x"
                               f"{args.get('input_size')} inputs; {data.name} is {c}x{h}x{w}")
    if cfg.model == "planned" and args.get("num_classes") != len(data.classes):
        raise EdgeBranchyError(f"the plan is for {args.get('num_classes')} classes; {data.name} has "
                               f"{len(data.classes)}")
    if h != w and "input_size" not in args:
        raise EdgeBranchyError(f"zoo networks take square inputs; {data.name} is {h}x{w}")
    args.setdefault("in_channels", c)
    args.setdefault("num_classes", len(data.classes))
    args.setdefault("input_size", h)
    return args
