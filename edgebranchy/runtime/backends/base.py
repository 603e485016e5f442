"""The backend contract: how the runner drives one device.

A backend loads every segment of an artifact (and the baseline graph) and
offers a handful of primitives on *backend tensors* (numpy arrays for
onnxruntime, torch tensors for torch, device buffers for tensorrt). The
early-exit rule itself lives only in `runtime/runner.py`; a backend never
decides which samples exit.

Segment k takes `x` (segment 0: the normalised image batch; later: the previous
segment's `features`) and returns `features` (not for the last segment),
`logits` and `entropy`. Only `entropy` (B floats) has to reach the host for the
decision; `features` and `logits` stay where the backend keeps them.
Where a model split by from_model passes several tensors across a split
(a skip connection), `features` holds all of them (the artifact names them
`features.0, ...` and the next segment's inputs `x.0, ...`); `gather`
compacts every one, and `launch` takes them as they came.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.declared import declared
from edgebranchy.vocab import BACKEND_NAMES, BACKENDS


class Launch:
    """One segment started on one lane (a CUDA stream, or nothing on CPU).

    `features` and `logits` are backend tensors. `entropy()` returns the
    per-sample entropy as a float32 host array, waiting only for this launch.
    `timing` holds what the backend measured, as floats in milliseconds, set once
    `entropy()` has returned: `gpu_ms` (the segment's GPU time, CUDA events) and, where
    the backend measures it, `wait_ms` (the host's wait); empty when timing is off.
    A plain class with slots: one is made per segment call, so it must be cheap.
    """

    __slots__ = ("features", "logits", "_entropy", "batch", "segment", "lane", "timing")

    def __init__(self, features: Any, logits: Any, entropy: Callable[[], np.ndarray], batch: int, segment: int,
                 lane: int = 0, timing: dict | None = None):
        self.features = features
        self.logits = logits
        self._entropy = entropy
        self.batch = batch
        self.segment = segment
        self.lane = lane
        self.timing = {} if timing is None else timing

    def entropy(self) -> np.ndarray:
        return self._entropy()


class Backend(ABC):
    """Runs the segments of one artifact on one device."""

    name: str = "?"
    #: True when launches return before the work is done (GPU streams), so that
    #: speculation can overlap the next segment with the host's decision.
    asynchronous: bool = False
    #: number of independent lanes (streams) the backend offers
    lanes: int = 1
    #: True when the backend can run the artifact's single early-exit graph (batch 1), as configured
    supports_single_graph: bool = False
    #: what the backend says about the single graph where it is not plain (tensorrt), else None
    single_graph_note: str | None = None
    #: the typed options the backend takes (runtime/backends/declared.py)
    OPTIONS: tuple = ()

    @property
    @abstractmethod
    def num_segments(self) -> int: ...

    @abstractmethod
    def to_device(self, x: np.ndarray) -> Any:
        """Move a host input batch (already normalised, float32, NCHW) to the backend."""

    @abstractmethod
    def launch(self, k: int, x: Any, lane: int = 0) -> Launch:
        """Start segment k on backend tensor x on the given lane."""

    @abstractmethod
    def gather(self, t: Any, index: np.ndarray, lane: int = 0) -> Any:
        """Rows `index` of backend tensor t (compaction), staying on the device."""

    @abstractmethod
    def to_host(self, t: Any) -> np.ndarray:
        """Copy a backend tensor to a host numpy array (waits for it)."""

    @abstractmethod
    def run_baseline(self, x: np.ndarray) -> np.ndarray:
        """Logits of the baseline network for a host batch, as a host array."""

    @property
    def can_speculate(self) -> bool:
        """Whether segment k+1 can run on a second lane while exit k is decided: asynchronous launches on two lanes
        (the vocabulary's `can_speculate` says which backends may; this says whether this one, as opened, does)."""
        return self.asynchronous and self.lanes >= 2

    @property
    def concurrent_calls(self) -> bool:
        """Whether this backend takes calls from several threads at once (the vocabulary's `concurrent`)."""
        info = BACKENDS.get(self.name)
        return bool(info is not None and info.concurrent)

    @property
    def threads_per_call(self) -> int:
        """CPU threads one call keeps busy (intra-op threads); concurrent streams divide the CPUs by it."""
        return 1

    def exit_logits(self, launch: Launch, pos: np.ndarray) -> np.ndarray:
        """Host logits of rows `pos` of a launch whose entropy was read: the samples that leave there. Backends
        that copy the logits back with the entropy override it (no second host round trip)."""
        t = launch.logits if len(pos) == launch.batch else self.gather(launch.logits, pos, launch.lane)
        return self.to_host(t)

    def step_one(self, k: int, x: Any) -> tuple[Any, Any, np.ndarray]:
        """Segment k on a batch-1 backend tensor, waited for: (features, logits, entropy as a float32
        host array of one). The runner's batch-1 path; backends override it where a Launch costs time."""
        launch = self.launch(k, x, 0)
        # a copy: a backend may read entropies back into a buffer it reuses
        return launch.features, launch.logits, np.array(launch.entropy(), dtype=np.float32)

    def load_single(self, thresholds: list[float]) -> None:
        """Load the artifact's single early-exit graph with these thresholds."""
        raise EdgeBranchyError(f"the {self.name} backend does not run the single early-exit graph")

    def run_single(self, x: Any) -> list[np.ndarray]:
        """One batch-1 call of the single graph: host arrays [label, logits, entropy, exit]."""
        raise EdgeBranchyError(f"the {self.name} backend does not run the single early-exit graph")

    def synchronize(self) -> None:
        """Wait for all outstanding work (no-op on synchronous backends)."""

    def describe(self) -> dict:
        """What was actually used (provider, threads, precision, ...), for results files."""
        return {"backend": self.name}

    def close(self) -> None:
        """Release sessions, engines and buffers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: where each backend of the vocabulary (edgebranchy/vocab.py) lives; imported only when asked for
_REGISTRY: dict[str, str] = {
    "onnxruntime": "edgebranchy.runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "torch": "edgebranchy.runtime.backends.torch:TorchBackend",
    "tensorrt": "edgebranchy.runtime.backends.tensorrt:TensorRTBackend",
}


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def get_backend_class(name: str) -> type[Backend]:
    """Import a backend by its registered name (lazily: only that backend's library loads)."""
    try:
        target = _REGISTRY[name]
    except (KeyError, TypeError):
        raise EdgeBranchyError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}") from None
    import importlib

    mod_name, cls_name = target.split(":")
    mod = importlib.import_module(mod_name)
    return getattr(mod, cls_name)


def backend_options(name: str) -> tuple:
    """The options the backend `name` declares: runtime/backends/declared.py for the vocabulary's backends (no
    backend module imported); a backend registered beyond them (a test double) declares its own OPTIONS."""
    if name in BACKEND_NAMES:
        return declared(name)
    return tuple(get_backend_class(name).OPTIONS)
