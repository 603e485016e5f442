"""EarlyExitRunner: the one place where the exit rule is applied on a device.

For a batch: run segment k on the active samples, let those whose entropy is
below T_k leave with exit k's answer, compact the rest, continue; the last
exit always answers. A NaN or infinite entropy (e.g. from a NaN input) is never
confident, so such a sample goes on to the last exit.

Two forms give the same answers: "segments" (one backend call per segment, the
host decides; batches shrink by compaction) and, at batch 1, "single-graph"
(the artifact's one graph with ONNX `If` inside: one call per sample). "auto"
takes the single graph at batch 1 only where a measurement shows it faster:
`choose_form` on this runner, or one recorded in the artifact's manifest.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Iterable, Iterator, Sequence

import numpy as np

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.rule import confident, confident_one
from edgebranchy.runtime.backends.base import Backend, get_backend_class
from edgebranchy.runtime.prediction import Answers, Prediction
from edgebranchy.util.checks import validate_thresholds
from edgebranchy.vocab import PRECISION_AUTO, check_form, check_stream_mode


class EarlyExitRunner:
    """Runs an artifact's segments with entropy early exit on a backend."""

    def __init__(self, artifact: str | os.PathLike | Artifact, backend: str | Backend = "onnxruntime",
                 thresholds: Sequence[float] | None = None, options: dict | None = None,
                 speculate: bool | None = None, verify: bool = True, form: str = "auto"):
        self.artifact = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact, verify=verify)
        self.precision_reason = None  # precision "auto": which one it took and why
        if (options or {}).get("precision") == PRECISION_AUTO and not isinstance(backend, Backend):
            from edgebranchy.artifact.precision_record import auto_precision

            chosen, self.precision_reason = auto_precision(self.artifact, backend)
            options = {**options, "precision": chosen}
        self.backend = backend if isinstance(backend, Backend) else get_backend_class(backend)(self.artifact, options)
        self.num_exits = self.artifact.num_exits
        self._single_loaded = False  # the single graph's session is open (the thresholds setter reloads it)
        if thresholds is None:
            from edgebranchy.artifact.precision_record import thresholds_for

            #: where the thresholds come from (int8 graphs: their own recalibration, precision_record.thresholds_for)
            thresholds, self.thresholds_source = thresholds_for(
                self.artifact, getattr(self.backend, "precision", None) or "fp32", self.backend.name)
        else:
            self.thresholds_source = "given"
        self.thresholds = thresholds
        #: samples that left at each exit since construction (or `reset_exit_counts`), for drift checks
        self.exit_counts = [0] * self.num_exits
        self._counts_lock = threading.Lock()  # concurrent streams (predict_stream mode "concurrent") count too
        self._exit_ids = [np.array([k], dtype=np.int64) for k in range(self.num_exits)]  # copied per answer: cheaper
        # speculation (segment k+1 on the other lane while exit k is decided) is opt-in: it can pay only where
        # launches are asynchronous (GPU streams), and no GPU benchmark has shown that it does; at batch 1 it
        # doubles the work of every sample that leaves early (`bench --speculate` measures it)
        self.speculate = False if speculate is None else bool(speculate)
        if self.speculate and not self.backend.can_speculate:
            raise EdgeBranchyError(f"speculation needs a backend with 2 lanes; {self.backend.name} has one")
        self.form = check_form(form)
        self.form_reason = "form='segments'"
        self._single = False  # batch-1 calls go to the single graph
        if form == "single-graph":
            self._load_single()
            self._single, self.form_reason = True, "form='single-graph'"
        elif form == "auto":
            rec = self._recorded_choice()
            if rec is None:
                self.form_reason = "auto: no measurement of the single graph on this backend: segments"
            elif rec.get("choice") == "single-graph":
                self._load_single()
                self._single = True
                self.form_reason = f"auto: the artifact records the single graph faster ({_figures(rec)})"
            else:
                self.form_reason = f"auto: the artifact records the segments faster ({_figures(rec)})"
        self.form_reason += self._single_note()
        #: what predict_stream's mode "auto" runs, and why (`choose_stream` measures it)
        self.stream_mode, self.stream_reason = "sequential", "auto: not measured on this runner: sequential"

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str = "cpu",
                        thresholds: Sequence[float] | None = None, **kw) -> "EarlyExitRunner":
        """A runner on the torch backend straight from a checkpoint (no ONNX export): the reference path."""
        from edgebranchy.runtime.backends.torch import checkpoint_artifact

        art = checkpoint_artifact(checkpoint)
        return cls(art, backend="torch", thresholds=thresholds, options={"device": device, **kw.pop("options", {})},
                   **kw)

    # -- the single graph -----------------------------------------------------------------------
    @property
    def single_graph_available(self) -> bool:
        """True when the artifact has a single graph and the backend can run it."""
        return bool(self.backend.supports_single_graph and self.artifact.single_graph is not None)

    @property
    def batch1_form(self) -> str:
        """The form that answers batch-1 calls now: 'single-graph' or 'segments'."""
        return "single-graph" if self._single else "segments"

    def _load_single(self) -> None:
        if not self.backend.supports_single_graph:
            raise EdgeBranchyError(f"the {self.backend.name} backend (as configured) does not run the single "
                                   "early-exit graph; use form='segments'")
        if not self._single_loaded:
            self.backend.load_single(self.thresholds)
            self._single_loaded = True

    def _recorded_choice(self) -> dict | None:
        if not self.single_graph_available:
            return None
        rec = (self.artifact.single_graph.get("measured") or {}).get(self.backend.name)
        return rec if isinstance(rec, dict) else None

    def choose_form(self, samples: np.ndarray, rounds: int = 5) -> dict:
        """Measure both forms at batch 1 on `samples` (normalised, N x C x H x W), rounds interleaved,
        and answer batch-1 calls with the faster from now on. Returns the figures and the choice."""
        if not self.single_graph_available:
            raise EdgeBranchyError("no single graph to choose: the artifact has none or the backend cannot run it")
        self._load_single()
        singles = [self.artifact.check_input(samples[i:i + 1]) for i in range(len(samples))]
        if not singles:
            raise EdgeBranchyError("choose_form needs at least one sample")
        fns = {"segments": self._predict_one, "single-graph": self._predict_single_graph}
        for fn in fns.values():  # warm-up
            for xb in singles[:20]:
                fn(xb, False)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(max(1, rounds)):
            for name, fn in fns.items():
                t0 = time.perf_counter_ns()
                for xb in singles:
                    fn(xb, False)
                times[name].append((time.perf_counter_ns() - t0) / 1e3 / len(singles))
        seg, one = float(np.median(times["segments"])), float(np.median(times["single-graph"]))
        self._single = one < seg
        rec = {"segments_us": seg, "single_graph_us": one, "choice": self.batch1_form, "samples": len(singles),
               "rounds": max(1, rounds)}
        self.form_reason = f"measured: {_figures(rec)}" + self._single_note()
        return rec

    def _single_note(self) -> str:
        """What the backend says about the single graph where it is not plain (tensorrt: whether its TensorRT
        imports `If`, and the host synchronisation inside `If`)."""
        note = self.backend.single_graph_note
        return f" ({self.backend.name} single graph: {note})" if note else ""

    def _check_thresholds(self, ts: Sequence[float]) -> list[float]:
        return validate_thresholds(ts, self.num_exits - 1)

    @property
    def thresholds(self) -> list[float]:
        """The entropy thresholds of the side exits; assigning new ones also reloads a loaded single graph
        (its thresholds are initializers: replaced when its session is created, no re-export)."""
        return self._thresholds

    @thresholds.setter
    def thresholds(self, ts: Sequence[float]) -> None:
        self._thresholds = self._check_thresholds(ts)
        if self._single_loaded:
            self.backend.load_single(self._thresholds)

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
        if n == 1:
            if self._single:
                return self._predict_single_graph(x, return_logits)
            if not self.speculate:
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
        b, ts, last = self.backend, self._thresholds, self.num_exits - 1
        h = b.to_device(x)
        for k in range(self.num_exits):
            h, lg, ent = b.step_one(k, h)
            if k == last or confident_one(ent.item(0), ts[k]):
                with self._counts_lock:
                    self.exit_counts[k] += 1
                lg = b.to_host(lg)
                # copies of what the answer keeps: a backend may reuse its batch-1 buffers (ort_bound)
                return Prediction(lg.argmax(1), self._exit_ids[k].copy(), ent.copy(),
                                  np.array(lg, dtype=np.float32) if return_logits else None)
        raise AssertionError("unreachable: the last exit always answers")

    def _predict_single_graph(self, x: np.ndarray, return_logits: bool) -> Prediction:
        """Batch 1 through the single graph: one call, the exit decision and the label inside it."""
        label, logits, ent, ex = self.backend.run_single(x)
        return Prediction(label, ex, ent, logits if return_logits else None)

    def decide(self, launch, alive: np.ndarray, rows: np.ndarray, out: "Answers") -> np.ndarray | None:
        """Apply exit `launch.segment`'s rule to rows `alive` of `launch`; record the answers of
        the samples that leave in `out`; return the rows that go on (None when none do)."""
        b, k = self.backend, launch.segment
        e = launch.entropy()
        e_alive = e if len(alive) == len(e) else e[alive]
        if k == self.num_exits - 1:
            done = None
        else:
            done = confident(e_alive, self._thresholds[k])
            if not done.any():
                return alive
            if done.all():
                done = None
        pos = alive if done is None else alive[done]
        lg = b.exit_logits(launch, pos)
        out.record(rows[pos], k, e_alive if done is None else e_alive[done], lg)
        with self._counts_lock:  # concurrent streams share the counts
            self.exit_counts[k] += len(pos)
        return None if done is None else alive[~done]

    def reset_exit_counts(self) -> None:
        self.exit_counts = [0] * self.num_exits
        self._exit_ids = [np.array([k], dtype=np.int64) for k in range(self.num_exits)]  # copied per answer: cheaper

    def baseline(self, x: np.ndarray) -> np.ndarray:
        """Labels of the baseline network (baseline.onnx) for a normalised batch."""
        x = self.artifact.check_input(x)
        return self.backend.run_baseline(x).argmax(1)

    # -- streams of batches -----------------------------------------------------------------------
    def predict_stream(self, batches: Iterable[np.ndarray], pipelined: bool | None = None, depth: int = 2,
                       mode: str | None = None, workers: int | None = None) -> Iterator[Prediction]:
        """Predictions for consecutive batches, in order, the same answers as `predict`. `mode`: "sequential" (one
        after another), "pipelined" (segments of consecutive batches overlap, one thread per segment),
        "concurrent" (independent batches on `workers` threads, default `stream_workers()`) or "auto" (the
        default: what `choose_stream` measured fastest here; sequential until it has). `pipelined` True / False
        is mode "pipelined" / "sequential"."""
        if mode is None:
            mode = "auto" if pipelined is None else ("pipelined" if pipelined else "sequential")
        mode = check_stream_mode(mode)
        if mode == "auto":
            mode = self.stream_mode
        if mode == "pipelined" and self.num_exits > 1:
            from edgebranchy.runtime.pipeline import run_pipeline

            yield from run_pipeline(self, batches, depth)
        elif mode == "concurrent":
            from edgebranchy.runtime.concurrent import run_concurrent

            self._check_concurrent()
            yield from run_concurrent(self, batches, workers or self.stream_workers(), depth)
        else:
            for xb in batches:
                yield self.predict(xb)

    def stream_workers(self) -> int:
        """Worker threads of mode "concurrent": the CPUs this process may use (util/cpus.py) divided by the
        backend's threads per call, at least 1."""
        from edgebranchy.util.cpus import usable_cpus

        return max(1, usable_cpus().count // max(1, self.backend.threads_per_call))

    def _check_concurrent(self) -> None:
        if not self.backend.concurrent_calls:
            raise EdgeBranchyError(f"the {self.backend.name} backend takes calls from one thread at a time: "
                                   "use mode 'sequential' or 'pipelined'")

    def choose_stream(self, batches: Sequence[np.ndarray], rounds: int = 3, workers: int | None = None) -> dict:
        """Time the stream modes this runner can run on `batches` (rounds interleaved, wall clock, median per
        sample) and make the fastest the one mode "auto" runs; sequential keeps it unless another is faster.
        Returns the figures and the choice."""
        from edgebranchy.runtime.stream_choice import choose_stream

        counts = list(self.exit_counts)  # the timing rounds repeat samples: they are not traffic for drift checks
        try:
            rec = choose_stream(self, list(batches), rounds, workers)
        finally:
            self.exit_counts = counts
        self.stream_mode, self.stream_reason = rec["choice"], rec["reason"]
        return rec

    def close(self) -> None:
        self.backend.close()
        self._single = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _figures(rec: dict) -> str:
    return (f"segments {rec.get('segments_us', float('nan')):.1f} us, single graph "
            f"{rec.get('single_graph_us', float('nan')):.1f} us per sample")
