"""EarlyExitRunner: the one place where the exit rule is applied on a device.

For a batch: run segment k on the active samples, let those whose entropy is
below T_k leave with exit k's answer, compact the rest, continue; the last
exit always answers. A NaN or infinite entropy (e.g. from a NaN input) is never
confident, so such a sample goes on to the last exit.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

import numpy as np

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.rule import confident, confident_one
from edgebranchy.runtime.backends.base import Backend, get_backend_class
from edgebranchy.runtime.prediction import Answers, Prediction


class EarlyExitRunner:
    """Runs an artifact's segments with entropy early exit on a backend."""

    def __init__(self, artifact: str | os.PathLike | Artifact, backend: str | Backend = "onnxruntime",
                 thresholds: Sequence[float] | None = None, options: dict | None = None,
                 speculate: bool | None = None, verify: bool = True):
        self.artifact = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact, verify=verify)
        self.backend = backend if isinstance(backend, Backend) else get_backend_class(backend)(self.artifact, options)
        self.num_exits = self.artifact.num_exits
        self.thresholds = self._check_thresholds(self.artifact.thresholds if thresholds is None else thresholds)
        # speculation (segment k+1 on the other lane while exit k is decided) is opt-in: it can pay only where
        # launches are asynchronous (GPU streams), and no GPU benchmark has shown that it does; at batch 1 it
        # doubles the work of every sample that leaves early (`bench --speculate` measures it)
        self.speculate = False if speculate is None else bool(speculate)
        if self.speculate and self.backend.lanes < 2:
            raise EdgeBranchyError(f"speculation needs a backend with 2 lanes; {self.backend.name} has one")

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str = "cpu",
                        thresholds: Sequence[float] | None = None, **kw) -> "EarlyExitRunner":
        """A runner on the torch backend straight from a checkpoint (no ONNX export): the reference path."""
        from edgebranchy.runtime.backends.torch import checkpoint_artifact

        art = checkpoint_artifact(checkpoint)
        return cls(art, backend="torch", thresholds=thresholds, options={"device": device, **kw.pop("options", {})},
                   **kw)

    def _check_thresholds(self, ts: Sequence[float]) -> list[float]:
        ts = [float(t) for t in ts]
        if len(ts) != self.num_exits - 1:
            raise EdgeBranchyError(f"{self.num_exits} exits need {self.num_exits - 1} thresholds, got {len(ts)}")
        if any(np.isnan(t) for t in ts):
            raise EdgeBranchyError("a threshold is NaN")
        return ts

    # -- one batch --------------------------------------------------------------------------------
    def predict(self, x: np.ndarray, return_logits: bool = False) -> Prediction:
        """Early-exit inference on a normalised float32 batch N x C x H x W (any N >= 1)."""
        x = self.artifact.check_input(x)
        return self._predict(x, return_logits)

    def _predict(self, x: np.ndarray, return_logits: bool) -> Prediction:
        b = self.backend
        n = len(x)
        if n == 0:
            raise EdgeBranchyError("empty batch")
        if n == 1 and not self.speculate:
            return self._predict_one(x, return_logits)
        out = Answers(n, return_logits)
        last = self.num_exits - 1
        rows = np.arange(n)          # sample id of each row of the current launch's batch
        alive = rows                 # rows of the current launch still undecided
        launch = b.launch(0, b.to_device(x), 0)
        for k in range(self.num_exits):
            spec = None
            if self.speculate and k < last:
                spec = b.launch(k + 1, launch.features, 1 - launch.lane)  # runs while we decide
            keep = self.decide(launch, alive, rows, out)
            if keep is None:
                break
            if spec is not None:
                launch, alive = spec, keep
            else:
                feats = launch.features if len(keep) == launch.batch else b.gather(launch.features, keep, launch.lane)
                rows = rows[keep]
                alive = np.arange(len(keep))
                launch = b.launch(k + 1, feats, launch.lane)
        return out.prediction()

    def _predict_one(self, x: np.ndarray, return_logits: bool) -> Prediction:
        """Batch 1 without speculation: the same rule with scalar bookkeeping (less per-call overhead)."""
        b, ts, last = self.backend, self.thresholds, self.num_exits - 1
        h = b.to_device(x)
        for k in range(self.num_exits):
            launch = b.launch(k, h, 0)
            e = launch.entropy().item(0)
            if k == last or confident_one(e, ts[k]):
                lg = b.to_host(launch.logits)
                return Prediction(np.array([lg.argmax()], dtype=np.int64), np.array([k], dtype=np.int64),
                                  np.array([e], dtype=np.float32),
                                  lg.astype(np.float32, copy=False) if return_logits else None)
            h = launch.features
        raise AssertionError("unreachable: the last exit always answers")

    def decide(self, launch, alive: np.ndarray, rows: np.ndarray, out: "Answers") -> np.ndarray | None:
        """Apply exit `launch.segment`'s rule to rows `alive` of `launch`; record the answers of
        the samples that leave in `out`; return the rows that go on (None when none do)."""
        b, k = self.backend, launch.segment
        e = launch.entropy()
        e_alive = e if len(alive) == len(e) else e[alive]
        if k == self.num_exits - 1:
            done = None
        else:
            done = confident(e_alive, self.thresholds[k])
            if not done.any():
                return alive
            if done.all():
                done = None
        pos = alive if done is None else alive[done]
        lg = b.to_host(launch.logits if len(pos) == launch.batch else b.gather(launch.logits, pos, launch.lane))
        out.record(rows[pos], k, e_alive if done is None else e_alive[done], lg)
        return None if done is None else alive[~done]

    def baseline(self, x: np.ndarray) -> np.ndarray:
        """Labels of the baseline network (baseline.onnx) for a normalised batch."""
        x = self.artifact.check_input(x)
        return self.backend.run_baseline(x).argmax(1)

    # -- streams of batches -----------------------------------------------------------------------
    def predict_stream(self, batches: Iterable[np.ndarray], pipelined: bool = True,
                       depth: int = 2) -> Iterator[Prediction]:
        """Predictions for consecutive batches, in order; with `pipelined`, segments of
        consecutive batches overlap (one thread per segment). Same answers as `predict`."""
        if not pipelined or self.num_exits == 1:
            for xb in batches:
                yield self.predict(xb)
            return
        from edgebranchy.runtime.pipeline import run_pipeline

        yield from run_pipeline(self, batches, depth)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
