"""The run vocabulary: precisions, batch-1 forms, backend names and what each backend can do.

Every module that checks one of these words takes it from here (export, the TensorRT build and its
settings, the backends' declared options, the runner, bench's sweep and the CLI), so a new precision or
backend is added in one place. Standard library only: the CLI builds its parser from it without numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

from edgebranchy.errors import EdgeBranchyError

#: what a graph or an engine computes in ("int8": explicit Q/DQ graphs, export/quantize.py; the exit heads stay fp32)
PRECISIONS: Tuple[str, ...] = ("fp32", "fp16", "int8")
#: precisions a later change adds, refused until then with the reason (none now)
NOT_YET: Dict[str, str] = {}
#: precisions whose graphs hold their own quantization: their thresholds are recalibrated on those graphs
RECALIBRATED: Tuple[str, ...] = ("int8",)
#: the precision a run may ask for instead of naming one: int8 only where it measured faster (runtime/precision_choice.py)
PRECISION_AUTO = "auto"

#: how a batch-1 call is answered: per segment (the host decides), by the single graph (`If` inside), or
#: "auto" (the single graph where a measurement shows it faster); larger batches always run per segment
FORMS: Tuple[str, ...] = ("auto", "segments", "single-graph")
BATCH1_FORMS: Tuple[str, ...] = ("segments", "single-graph")

#: how `predict_stream` runs a stream of batches: one after another, segments of consecutive batches overlapped on
#: threads (one per segment), independent batches on worker threads (each the whole early-exit loop), or "auto"
#: (the one `choose_stream` measured fastest on that runner; sequential until it has)
STREAM_MODES: Tuple[str, ...] = ("auto", "sequential", "pipelined", "concurrent")
#: what runs each stream of `bench --streams`: a process of its own (no shared interpreter lock) or a thread
STREAM_CLIENTS: Tuple[str, ...] = ("processes", "threads")


@dataclass(frozen=True)
class BackendInfo:
    """What a backend can do, known without importing it (the instance says what it does as configured)."""

    name: str
    can_speculate: bool   # asynchronous launches on two lanes (GPU streams): segment k+1 while exit k is decided
    single_graph: bool    # may run the artifact's single early-exit graph (onnxruntime fp32; tensorrt from 10.0)
    concurrent: bool      # may take calls from several threads at once (stream mode "concurrent", bench --streams)


BACKENDS: Dict[str, BackendInfo] = {
    "onnxruntime": BackendInfo("onnxruntime", can_speculate=False, single_graph=True, concurrent=True),
    # one execution context per lane, one thread at a time: several streams need a runner each
    "tensorrt": BackendInfo("tensorrt", can_speculate=True, single_graph=True, concurrent=False),
    "torch": BackendInfo("torch", can_speculate=True, single_graph=False, concurrent=True),  # speculates on CUDA only
}
BACKEND_NAMES: Tuple[str, ...] = tuple(sorted(BACKENDS))


def _one_of(words: Tuple[str, ...]) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def check_precision(value: Any, where: str = "precision") -> str:
    """`value` when it is a precision; EdgeBranchyError naming `where` (and why a planned one is not yet) otherwise."""
    if value not in PRECISIONS:
        extra = f" ({NOT_YET[value]})" if isinstance(value, str) and value in NOT_YET else ""
        raise EdgeBranchyError(f"{where} must be {_one_of(PRECISIONS)}, got {value!r}{extra}")
    return value


def check_form(value: Any, where: str = "form") -> str:
    """`value` when it is a batch-1 form; EdgeBranchyError naming `where` otherwise."""
    if value not in FORMS:
        raise EdgeBranchyError(f"{where} must be one of {', '.join(FORMS)}, got {value!r}")
    return value


def check_stream_mode(value: Any, where: str = "mode") -> str:
    """`value` when it is a stream mode; EdgeBranchyError naming `where` otherwise."""
    if value not in STREAM_MODES:
        raise EdgeBranchyError(f"{where} must be one of {', '.join(STREAM_MODES)}, got {value!r}")
    return value


def backend_info(name: Any) -> BackendInfo:
    """The capabilities of the backend `name`; EdgeBranchyError for a name that is not a backend."""
    if name not in BACKENDS:
        raise EdgeBranchyError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    return BACKENDS[name]


def can_speculate(backend: str) -> bool:
    """Whether the backend `name` can run segment k+1 on a second lane while exit k is decided."""
    return backend_info(backend).can_speculate
