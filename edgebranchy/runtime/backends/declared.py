"""Every backend's options, declared once: default, bounds, CLI flag and profile key.

The backends validate what they are given against these, the CLI builds its flags from them and bench
fills them from the profile's [runtime] table. Standard library only (no backend module, no numpy), so
`--help` builds every flag without loading a backend.
"""
from __future__ import annotations

from typing import Dict, Tuple

from edgebranchy.runtime.backends.options import BackendOption
from edgebranchy.vocab import BACKEND_NAMES, PRECISIONS, backend_info

#: ONNX Runtime's graph optimisation levels by the names the option takes
ORT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}

# Chosen by measurement on a 2-core machine (benchmarks/ort_settings.py, recorded in
# benchmarks/results/ort_settings.md): one intra-op thread per session and no spinning
# keep K sessions from fighting for the cores (2 spinning threads per session was the worst).
ONNXRUNTIME = (
    BackendOption("intra_op_threads", "int", 1, "intra-op threads per session (0: the CPUs this process may use: "
                  "affinity mask, cgroup quota)", minimum=0, flag="--threads", profile_key="intra_op_threads",
                  bound="threads"),
    BackendOption("inter_op_threads", "int", 1, "inter-op threads per session", minimum=0, bound="threads"),
    BackendOption("allow_spinning", "bool", False, "ONNX Runtime thread spinning", flag="--spinning",
                  profile_key="allow_spinning"),
    BackendOption("graph_optimization", "str", "all", "graph optimisation level",
                  choices=tuple(ORT_LEVELS), profile_key="graph_optimization"),
    BackendOption("execution_mode", "str", "sequential", "execution mode", choices=("sequential", "parallel"),
                  profile_key="execution_mode"),
    BackendOption("precision", "str", "fp32", "which graphs to run", choices=PRECISIONS),
    BackendOption("providers", "strings", ("CPUExecutionProvider",), "execution providers, in order"),
    BackendOption("iobinding", "bool", True, "batch-1 calls through IOBinding with buffers bound once "
                  "(runtime/backends/ort_bound.py)"),
)

TORCH = (
    BackendOption("device", "str", "cpu", "torch device (cpu, cuda, cuda:N)", flag="--device"),
    BackendOption("checkpoint", "str", None, "the checkpoint the artifact came from (default: the artifact's source)",
                  nullable=True, flag="--checkpoint"),
    BackendOption("precision", "str", "fp32", "fp16 needs CUDA", choices=PRECISIONS),
    BackendOption("timing", "bool", False, "record GPU time per launch (CUDA events)"),
    BackendOption("threads", "int", 0, "torch intra-op threads (0: the CPUs this process may use: affinity mask, "
                  "cgroup quota)", minimum=0, bound="threads"),
)

TENSORRT = (
    BackendOption("precision", "str", None, "which engine set (needed only when both were built)",
                  choices=PRECISIONS, nullable=True),
    BackendOption("dla_core", "int", None, "which engine set: -1 (GPU) or a DLA core", minimum=-1, nullable=True),
    BackendOption("device_key", "str", None, "pick one engine set by its key", nullable=True),
    BackendOption("timing", "bool", False, "record GPU time per launch (CUDA events)"),
    BackendOption("host_wait", "str", "spin", "how the host waits for results: spin (a busy core, lowest latency) "
                  "or block (BLOCKING_SYNC events, the thread sleeps)", choices=("spin", "block"), flag="--host-wait"),
)

OPTIONS: Dict[str, Tuple[BackendOption, ...]] = {"onnxruntime": ONNXRUNTIME, "tensorrt": TENSORRT, "torch": TORCH}


def declared(name: str) -> Tuple[BackendOption, ...]:
    """The options the backend `name` takes (EdgeBranchyError for a name that is not a backend)."""
    return OPTIONS[backend_info(name).name]


def every_backend() -> list:
    """(name, options) of every backend, in name order: what the CLI builds its flags from."""
    return [(name, OPTIONS[name]) for name in BACKEND_NAMES]
