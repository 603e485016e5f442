"""One deserialised engine and its execution contexts, one per lane (CUDA stream), for the TensorRT backend.

A context is created the first time its lane runs the engine (lane 0's when the engine is opened), and it
selects its lane's optimisation profile before anything else (`compat.lane_profile`): where contexts share
one profile (10+ implicitly; 8.6/9.x built with PROFILE_SHARING_0806, where a context after the first starts
with -1 and must select profile 0 itself, NvInferRuntime.h 8.6.1 lines 1749-1752) every lane selects 0; on
8.5 each lane has its own identical profile. The selection is enqueued on the lane's own stream, the one the
lane's work runs on (the ordering NvInferRuntime.h asks for). One context runs on one thread at a time (a lock
per lane).

tensorrt is never imported here: the module comes from the caller. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.tensorrt.compat import lane_profile

#: attributes this module uses on TensorRT objects (engines, execution contexts)
TRT_OBJECT_API = frozenset({
    "num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype", "get_tensor_shape",
    "create_execution_context", "active_optimization_profile", "set_optimization_profile_async",
    "set_input_shape", "set_tensor_address", "execute_async_v3",
})

#: name -> (is input, numpy dtype, dims after the batch axis)
IO = Dict[str, Tuple[bool, np.dtype, tuple]]


def engine_io(trt: Any, name: str, engine: Any, dtypes: dict) -> IO:
    """The engine's tensors, refusing a data type the backend does not handle."""
    io: IO = {}
    for i in range(engine.num_io_tensors):
        t = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(t) == trt.TensorIOMode.INPUT
        dt = engine.get_tensor_dtype(t)
        if dt not in dtypes:
            raise EdgeBranchyError(f"{name} engine: tensor {t!r} has data type {dt}, which this backend does not "
                                   "handle")
        io[t] = (is_input, dtypes[dt], tuple(int(d) for d in engine.get_tensor_shape(t))[1:])
    return io


def row_index(index: Any, batch: int) -> np.ndarray:
    """A gather's rows as a 1-D integer array (a boolean mask of the batch is turned into its row numbers)."""
    idx = np.asarray(index)
    if idx.dtype == np.bool_:
        if idx.shape != (batch,):
            raise EdgeBranchyError(f"boolean index of shape {idx.shape} for a batch of {batch}")
        idx = np.flatnonzero(idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise EdgeBranchyError("gather index must be a 1-D array of row numbers")
    if idx.size and (idx.min() < 0 or idx.max() >= batch):
        raise EdgeBranchyError(f"gather index out of range for a batch of {batch}")
    return idx


class EngineLanes:
    """An engine, its I/O and a context per lane (made on first use, holding its lane's profile)."""

    def __init__(self, trt: Any, name: str, engine: Any, io: IO, lanes: int, shared: bool,
                 hint: str, errors: Callable[[], List[str]], inputs: Optional[List[str]] = None):
        self.name, self.engine, self.io, self.shared, self._hint, self._errors = name, engine, io, shared, hint, errors
        self.outputs = [n for n, (is_input, _, _) in io.items() if not is_input]
        #: the inputs in the order the caller passes tensors (the artifact's: x.0, x.1, ...)
        self.inputs = list(inputs) if inputs is not None else [n for n, (is_input, _, _) in io.items() if is_input]
        self.contexts: List[Any] = [None] * lanes
        self.locks = [threading.Lock() for _ in range(lanes)]

    def _context(self, lane: int, stream: Any) -> Any:
        ctx = self.contexts[lane]
        if ctx is not None:
            return ctx
        ctx = self.engine.create_execution_context()
        if ctx is None:
            raise EdgeBranchyError(f"TensorRT could not create an execution context for {self.name} "
                                   "(out of GPU memory?)")
        want = lane_profile(lane, self.shared)
        if ctx.active_optimization_profile != want:
            try:
                ctx.set_optimization_profile_async(want, stream.handle)
            except RuntimeError as e:
                raise EdgeBranchyError(f"the {self.name} engine refused optimisation profile {want} to the context of "
                                       f"lane {lane} ({e}; {'; '.join(self._errors()[-2:])}): engines built without a "
                                       f"profile for every lane; {self._hint}") from None
        if ctx.active_optimization_profile != want:
            raise EdgeBranchyError(f"the {self.name} engine gave lane {lane}'s context optimisation profile "
                                   f"{ctx.active_optimization_profile}, not {want}; {self._hint}")
        self.contexts[lane] = ctx
        return ctx

    def open(self, lane: int, stream: Any) -> None:
        """Create lane `lane`'s context now (lane 0's first: on 8.5 only the first context gets profile 0)."""
        with self.locks[lane]:
            self._context(lane, stream)

    def run(self, lane: int, stream: Any, shapes: Dict[str, tuple], addresses: Dict[str, int],
            what: str) -> None:
        """Set input shapes and tensor addresses on lane `lane`'s context and enqueue the engine on `stream`."""
        with self.locks[lane]:
            ctx = self._context(lane, stream)
            for name, shape in shapes.items():
                if not ctx.set_input_shape(name, shape):
                    raise EdgeBranchyError(f"{what}: TensorRT refused input shape {shape} for {name!r} on lane {lane} "
                                           f"(profile {ctx.active_optimization_profile}); "
                                           + "; ".join(self._errors()[-2:]))
            for name, ptr in addresses.items():
                ctx.set_tensor_address(name, ptr)
            if not ctx.execute_async_v3(stream.handle):
                raise EdgeBranchyError(f"TensorRT failed to enqueue {what}: " + "; ".join(self._errors()[-2:]))

    def close(self) -> None:
        self.contexts = []
