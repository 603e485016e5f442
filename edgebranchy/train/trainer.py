"""The BranchyNet trainer: baseline first, then joint training on the weighted sum of exit losses.

Data lives in pre-loaded tensors indexed by a seeded permutation per epoch (no
DataLoader); an image folder is decoded batch by batch instead (`_Lazy`).
Every finished epoch is saved to `<out>.resume` (atomically) with the
optimiser and RNG state, so a killed run resumes to the same final state.
With `freeze_backbone`, only the side exit heads train on the frozen trunk
(kept in eval mode), so the main exit and the baseline stay the given model.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgebranchy.data import DataBundle, load_dataset
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.registry import build_model
from edgebranchy.models.checkpoint import save_checkpoint
from edgebranchy.train.config import RECIPES, TrainConfig, default_exit_weights, model_args, validate_train_config
from edgebranchy.train.distributed import Dist, init_distributed, shutdown
from edgebranchy.train.threads import set_threads

__all__ = ["RECIPES", "TrainConfig", "Trainer", "default_exit_weights", "evaluate", "model_args",
           "validate_train_config"]

class _Lazy:
    """A lazily decoded split as the trainer indexes it (index tensor or slice -> normalised batch tensor)."""

    def __init__(self, split, norm, device):
        self.view, self.device = split.x_float(norm), device

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return torch.from_numpy(self.view[index]).to(self.device)


class _Progress:
    """tqdm bar over steps when stderr is a terminal, one summary line per epoch always."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def bar(self, total: int, desc: str):
        if not self.enabled:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, disable=None)

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)


def _versions() -> dict:
    import numpy

    return {"edgebranchy": __import__("edgebranchy").__version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


@torch.no_grad()
def evaluate(net, x: torch.Tensor, y: torch.Tensor, batch: int = 1000, baseline=None) -> dict:
    """Per-exit accuracy (and the baseline's, when given) on tensors x, y."""
    net.eval()
    k = net.num_exits
    correct = torch.zeros(k, dtype=torch.long)
    base_correct = torch.zeros((), dtype=torch.long)
    for i in range(0, len(y), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        for j, out in enumerate(net(xb)):
            correct[j] += (out.argmax(1) == yb).sum().cpu()
        if baseline is not None:
            baseline.eval()
            base_correct += (baseline(xb).argmax(1) == yb).sum().cpu()
    n = max(1, len(y))
    res = {"exit_accuracy": [float(c) / n for c in correct.tolist()], "n": int(len(y))}
    if baseline is not None:
        res["baseline_accuracy"] = float(base_correct) / n
    return res


class Trainer:
    """Runs the two phases, with resume and optional torchrun/DDP.

    `on_epoch(stats)` is called on the main rank once the state after that epoch is on disk.
    """

    def __init__(self, cfg: TrainConfig, out: str | os.PathLike, progress: bool = True,
                 data: DataBundle | None = None, on_epoch: Callable[[dict], None] | None = None):
        validate_train_config(cfg)
        self.cfg, self.out = cfg, Path(out)
        self.resume_path = self.out.with_name(self.out.name + ".resume")
        self.dist: Dist = init_distributed(cfg.device)
        self.progress = _Progress(progress and self.dist.main)
        self.on_epoch = on_epoch
        if cfg.batch_size < self.dist.world:
            raise EdgeBranchyError(f"batch size {cfg.batch_size} is smaller than the {self.dist.world} processes")
        self.data = data or load_dataset(cfg.dataset, cfg.data_dir, val_size=cfg.val_size, seed=cfg.seed,
                                         limit=cfg.limit, image=cfg.image)
        self.model_args = model_args(cfg, self.data)
        self.device = torch.device(cfg.device if not cfg.device.startswith("cuda") or not self.dist.enabled
                                   else f"cuda:{self.dist.local_rank}")
        torch.manual_seed(cfg.seed)
        self.net = build_model(cfg.model, self.model_args)
        self.init_info = self._init_weights()
        self.net = self.net.to(self.device)
        if cfg.freeze_backbone:
            if cfg.baseline_epochs:
                raise EdgeBranchyError("`freeze_backbone` trains the exit heads only: it has no baseline phase "
                                       "(drop `baseline_epochs`)")
            for p in self.net.main_parameters():
                p.requires_grad_(False)
            if not any(p.requires_grad for p in self.net.parameters()):
                raise EdgeBranchyError(f"{cfg.model}: with the backbone frozen nothing is left to train")
        k = self.net.num_exits
        self.weights = list(cfg.exit_weights) if cfg.exit_weights else default_exit_weights(k)
        if len(self.weights) != k:
            raise EdgeBranchyError(f"`exit_weights` needs {k} values for {cfg.model}, got {len(self.weights)}")
        norm = self.data.norm
        self.x = {s: (torch.from_numpy(split.x_float(norm)).to(self.device) if isinstance(split.x, np.ndarray)
                      else _Lazy(split, norm, self.device))
                  for s, split in ((s, getattr(self.data, s)) for s in ("train", "val", "test"))}
        self.y = {s: torch.from_numpy(getattr(self.data, s).y).to(self.device) for s in ("train", "val", "test")}
        self.baseline_state: dict | None = None
        self.history: list[dict] = []
        self._threads_cap = torch.get_num_threads()  # fewer under load (train/threads.py), never more

    # -- phases -----------------------------------------------------------------------------
    def _init_weights(self) -> dict | None:
        if not self.cfg.init_weights:
            if self.cfg.init_skip:
                raise EdgeBranchyError("`init_skip` applies to the weights of `init_weights`: give that file")
            return None
        if self.cfg.init_skip and self.cfg.freeze_backbone:
            raise EdgeBranchyError(f"`init_skip` {','.join(self.cfg.init_skip)} leaves part of the model as "
                                   "initialised and `freeze_backbone` would keep it untrained: drop "
                                   "`freeze_backbone` (the baseline phase then trains the whole model)")
        from edgebranchy.models.custom import load_init_weights
        from edgebranchy.util.files import sha256_file

        info = load_init_weights(self.net, self.cfg.init_weights, skip=self.cfg.init_skip or ())
        return {**info, "path": str(self.cfg.init_weights), "sha256": sha256_file(self.cfg.init_weights)}

    def _phases(self) -> list[tuple[str, int]]:
        if self.cfg.freeze_backbone:
            return [("joint", self.cfg.epochs)]
        be = self.cfg.epochs if self.cfg.baseline_epochs is None else self.cfg.baseline_epochs
        return ([("baseline", be)] if be > 0 else []) + [("joint", self.cfg.epochs)]

    def _optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.cfg.lr, betas=tuple(self.cfg.betas),
                                weight_decay=self.cfg.weight_decay)

    def _module_for(self, phase: str):
        module = self.net.baseline() if phase == "baseline" else self.net
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            module = DDP(module, device_ids=ids)
        return module

    def run(self, resume: bool = False) -> dict:
        """Train both phases (resuming from `<out>.resume` when asked) and write the checkpoint."""
        state = self._load_resume() if resume else None
        if resume and state is None and self.dist.main:
            self.progress.line(f"no resume state at {self.resume_path}; starting from scratch")
        t_start = time.perf_counter()
        for pi, (phase, epochs) in enumerate(self._phases()):
            start_epoch = 0
            if state is not None:
                if state["phase_index"] > pi:
                    continue
                if state["phase_index"] == pi:
                    start_epoch = state["epoch"]
            module = self._module_for(phase)
            params = list(self.net.main_parameters()) if phase == "baseline" else \
                [p for p in self.net.parameters() if p.requires_grad]
            opt = self._optimizer(params)
            if state is not None and state["phase_index"] == pi:
                try:
                    opt.load_state_dict(state["optimizer"])
                except (ValueError, KeyError, TypeError, RuntimeError) as e:
                    raise EdgeBranchyError(f"{self.resume_path}: its optimiser state does not fit this model "
                                           f"({str(e)[:200]}); delete it to start over") from None
                torch.set_rng_state(state["rng"])
                state = None
            self._phase_steps = sum(h["steps"] for h in self.history if h["phase"] == phase)
            for epoch in range(start_epoch, epochs):
                stats = self._epoch(module, opt, phase, pi, epoch, epochs)
                self._phase_steps += stats["steps"]
                self.history.append(stats)
                if self.dist.main:
                    self._save_resume(pi, epoch + 1, opt)
                    if self.on_epoch:
                        self.on_epoch(stats)
                if stats.get("stopped_at_max_steps"):
                    break
            if phase == "baseline":
                self.baseline_state = {k: v.detach().cpu().clone() for k, v in self.net.main_state_dict().items()}
        if self.baseline_state is None:  # no baseline phase: the baseline is the main branch
            self.baseline_state = {k: v.detach().cpu().clone() for k, v in self.net.main_state_dict().items()}
        result = self._finish(time.perf_counter() - t_start)
        shutdown(self.dist)
        return result

    def _epoch(self, module, opt, phase: str, pi: int, epoch: int, epochs: int) -> dict:
        cfg, dist = self.cfg, self.dist
        module.train()
        if cfg.freeze_backbone:  # batch-norm statistics and dropout of the given model stay as they are
            self.net.stages.eval()
            self.net.exits[-1].eval()
        threads = set_threads(self.device.type, int(os.environ.get("LOCAL_WORLD_SIZE", dist.world)), self._threads_cap)  # the load may have changed since the last epoch
        n = len(self.y["train"])
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + pi * 10_007 + epoch)
        perm = torch.randperm(n, generator=g)
        per_rank = cfg.batch_size // dist.world
        if dist.enabled:
            perm = perm[dist.rank::dist.world][: n // dist.world]
        perm = perm.to(self.device)
        steps = (len(perm) + per_rank - 1) // per_rank
        if cfg.max_steps is not None:  # a bound on the whole phase
            steps = max(0, min(steps, cfg.max_steps - self._phase_steps))
        k = self.net.num_exits
        w = self.weights
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros(k if phase == "joint" else 1, dtype=torch.long, device=self.device)
        seen = 0
        bar = self.progress.bar(steps, f"{phase} {epoch + 1}/{epochs}")
        t0 = time.perf_counter()
        xs, ys = self.x["train"], self.y["train"]
        for step in range(steps):
            idx = perm[step * per_rank:(step + 1) * per_rank]
            xb, yb = xs[idx], ys[idx]
            out = module(xb)
            if phase == "baseline":
                loss = F.cross_entropy(out, yb)
                with torch.no_grad():
                    correct[0] += (out.argmax(1) == yb).sum()
            else:
                loss = w[0] * F.cross_entropy(out[0], yb)
                for j in range(1, k):
                    loss = loss + w[j] * F.cross_entropy(out[j], yb)
                with torch.no_grad():
                    for j in range(k):
                        correct[j] += (out[j].argmax(1) == yb).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            seen += len(yb)
            if bar is not None and (step % 25 == 0 or step == steps - 1):
                acc = (correct.float() / max(1, seen) * 100).tolist()
                bar.set_postfix(loss=f"{loss_sum.item() / (step + 1):.3f}",
                                acc="/".join(f"{a:.1f}" for a in acc))
                bar.update(step + 1 - bar.n)
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                self.progress.line(f"{phase} epoch {epoch + 1} step {step + 1}/{steps}: "
                                   f"loss {loss_sum.item() / (step + 1):.4f} (running mean)")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        acc = (correct.float() / max(1, seen)).tolist()
        stats = {"phase": phase, "epoch": epoch + 1, "epochs": epochs, "steps": steps, "seconds": seconds,
                 "loss": loss_sum.item() / max(1, steps), "train_accuracy": acc,
                 "stopped_at_max_steps": cfg.max_steps is not None and self._phase_steps + steps >= cfg.max_steps,
                 "cpu_threads": threads}
        self.progress.line(f"{phase} epoch {epoch + 1}/{epochs}: loss {stats['loss']:.4f}, train acc "
                           + "/".join(f"{a * 100:.1f}%" for a in acc) + f" ({seconds:.1f} s" + (f", {threads['threads']} threads: {threads['why']})" if threads else ")"))
        return stats

    # -- resume -------------------------------------------------------------------------------
    def _save_resume(self, pi: int, epoch: int, opt) -> None:
        import io

        from edgebranchy.util.files import atomic_write_bytes

        buf = io.BytesIO()
        torch.save({"phase_index": pi, "epoch": epoch, "net": self.net.state_dict(),
                    "baseline_state": self.baseline_state, "optimizer": opt.state_dict(),
                    "rng": torch.get_rng_state(), "history": self.history, "config": self._resume_key()}, buf)
        atomic_write_bytes(self.resume_path, buf.getvalue())

    def _resume_key(self) -> str:
        """The settings a resumed run must share with the interrupted one (output-only ones excluded)."""
        return repr(sorted((k, v) for k, v in asdict(self.cfg).items() if k != "log_every"))

    def _load_resume(self) -> dict | None:
        if not self.resume_path.exists():
            return None
        from edgebranchy.models.checkpoint import torch_load

        st = torch_load(self.resume_path, "resume-state", "resume state", device=self.device,
                        damaged="cannot resume from a damaged state file")
        keys = {"phase_index", "epoch", "net", "baseline_state", "optimizer", "rng", "config"}
        if not isinstance(st, dict) or not keys <= set(st):
            raise EdgeBranchyError(f"{self.resume_path}: not an edgebranchy resume state; delete it to start over")
        self._check_resume(st)
        if st.get("config") != self._resume_key():
            raise EdgeBranchyError(f"{self.resume_path} was written by a run with other settings; "
                                   "resume with the same arguments or delete it")
        try:
            self.net.load_state_dict(st["net"])
        except (RuntimeError, TypeError, AttributeError) as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise EdgeBranchyError(f"{self.resume_path}: the resume state does not fit {self.cfg.model} "
                                   f"({first[:200]}); delete it to start over") from None
        self.baseline_state = st["baseline_state"]
        self.history = list(st.get("history") or [])
        st["rng"] = st["rng"].cpu()
        return st

    def _check_resume(self, st: dict) -> None:
        """Types and ranges of a resume state (its declared schema) before any use."""
        from edgebranchy.util.schema import Int, List, Nullable, Obj, Str, check

        phases = self._phases()
        pi = st.get("phase_index")
        epochs = phases[pi][1] if isinstance(pi, int) and not isinstance(pi, bool) and 0 <= pi < len(phases) else 0
        schema = Obj({"phase_index": Int(0, len(phases) - 1), "epoch": Int(0, epochs), "net": Obj(),
                      "baseline_state": Nullable(Obj()), "optimizer": Obj(), "config": Str()},
                     {"history": List(Obj({"phase": Str(), "steps": Int(0)}))})
        check(st, schema, f"{self.resume_path}: resume state (delete it to start over)")
        if not isinstance(st["rng"], torch.Tensor) or st["rng"].dtype != torch.uint8:
            raise EdgeBranchyError(f"{self.resume_path}: resume state 'rng' is not a random generator state; "
                                   "delete it to start over")

    # -- end ----------------------------------------------------------------------------------
    def _finish(self, seconds: float) -> dict:
        cfg = self.cfg
        baseline_net = build_model(cfg.model, self.model_args).to(self.device)
        baseline_net.load_state_dict(self.baseline_state, strict=False)
        baseline = baseline_net.baseline()
        val = evaluate(self.net, self.x["val"], self.y["val"], cfg.eval_batch, baseline)
        test = evaluate(self.net, self.x["test"], self.y["test"], cfg.eval_batch, baseline)
        d = self.data
        config = {
            "model": {"name": cfg.model, "args": self.model_args},
            "classes": d.classes,
            "input": {"shape": list(d.input_shape), "dtype": "float32", "layout": "NCHW", **d.norm.to_dict(),
                      **d.meta.get("input", {})},
            "dataset": d.describe(),
            "train": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
                      "exit_weights": self.weights, "world_size": self.dist.world, "seconds": seconds,
                      "init_weights": self.init_info,
                      "history": self.history},
            "validation": val,
            "test": test,
            "seed": cfg.seed,
            "versions": _versions(),
            "calibration": None,
        }
        if self.dist.main:
            save_checkpoint(self.out, config, {k: v.cpu() for k, v in self.net.state_dict().items()},
                            self.baseline_state)
            self.resume_path.unlink(missing_ok=True)
        self.dist.barrier()
        return config
