"""ONNX Runtime backend (CPU): one InferenceSession per segment, numpy arrays as backend tensors."""
from __future__ import annotations

from typing import Any

import numpy as np

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.base import Backend, Launch
from edgebranchy.runtime.backends.options import BackendOption, resolve_options

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}
# Chosen by measurement on a 2-core machine (benchmarks/ort_settings.py, recorded in
# benchmarks/results/ort_settings.md): one intra-op thread per session and no spinning
# keep K sessions from fighting for the cores (2 spinning threads per session was the worst).
OPTIONS = (
    BackendOption("intra_op_threads", "int", 1, "intra-op threads per session", minimum=0, flag="--threads",
                  profile_key="intra_op_threads"),  # 0 = ONNX Runtime's default
    BackendOption("inter_op_threads", "int", 1, "inter-op threads per session", minimum=0),
    BackendOption("allow_spinning", "bool", False, "ONNX Runtime thread spinning", flag="--spinning",
                  profile_key="allow_spinning"),
    BackendOption("graph_optimization", "str", "all", "graph optimisation level",
                  choices=tuple(_LEVELS), profile_key="graph_optimization"),
    BackendOption("execution_mode", "str", "sequential", "execution mode", choices=("sequential", "parallel"),
                  profile_key="execution_mode"),
    BackendOption("precision", "str", "fp32", "which graphs to run", choices=("fp32", "fp16")),
    BackendOption("providers", "strings", ("CPUExecutionProvider",), "execution providers, in order"),
)


class OnnxRuntimeBackend(Backend):
    """Runs each segment graph in its own ONNX Runtime session."""

    name = "onnxruntime"
    OPTIONS = OPTIONS

    def __init__(self, artifact: Artifact, options: dict | None = None):
        import onnxruntime as ort

        self.options = resolve_options(OPTIONS, options, self.name)
        o = self.options
        available = set(ort.get_available_providers())
        missing = [p for p in o["providers"] if p not in available]
        if missing:
            raise EdgeBranchyError(f"ONNX Runtime provider(s) {', '.join(missing)} not available here "
                                   f"(available: {', '.join(sorted(available))})")
        self.artifact = artifact
        self.precision = o["precision"]
        self._ort = ort
        self.sessions = [self._session(artifact.segment_file(k, self.precision)) for k in range(artifact.num_exits)]
        self._outputs = [[o.name for o in s.get_outputs()] for s in self.sessions]
        for k, names in enumerate(self._outputs):
            want = ["logits", "entropy"] if k == artifact.num_exits - 1 else ["features", "logits", "entropy"]
            if sorted(names) != sorted(want):
                raise EdgeBranchyError(f"segment {k} graph has outputs {names}, expected {want}")
        # The public InferenceSession.run re-validates feed names and WebGPU capture state on every
        # call (several microseconds at batch 1); the runner validates inputs once itself, so it
        # calls the binding's run directly where it exists (recorded in describe()).
        self._runs = [self._fast_run(s) for s in self.sessions]
        self._idx = [(n.index("features") if "features" in n else -1, n.index("logits"), n.index("entropy"))
                     for n in self._outputs]
        self._baseline = None
        self._single = None
        self._single_feed: dict = {}
        self._single_keep: list = []  # arrays handed to add_initializer must outlive the session

    @staticmethod
    def _fast_run(sess):
        inner = getattr(sess, "_sess", None)
        if inner is not None and callable(getattr(inner, "run", None)):
            return lambda names, feed: inner.run(names, feed, None)
        return sess.run

    def _session(self, path, initializers: dict | None = None):
        ort, o = self._ort, self.options
        so = ort.SessionOptions()
        for name, value in (initializers or {}).items():
            so.add_initializer(name, value)
        so.intra_op_num_threads = o["intra_op_threads"]
        so.inter_op_num_threads = o["inter_op_threads"]
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[o["graph_optimization"]])
        so.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if o["execution_mode"] == "sequential"
                             else ort.ExecutionMode.ORT_PARALLEL)
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if o["allow_spinning"] else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if o["allow_spinning"] else "0")
        so.log_severity_level = 3
        try:
            return ort.InferenceSession(str(path), so, providers=list(o["providers"]))
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise EdgeBranchyError(f"ONNX Runtime cannot load {path}: {str(e).splitlines()[0][:300]}") from None

    @property
    def num_segments(self) -> int:
        return len(self.sessions)

    def to_device(self, x: np.ndarray) -> np.ndarray:
        return x

    def launch(self, k: int, x: Any, lane: int = 0) -> Launch:
        outs = self._runs[k](self._outputs[k], {"x": x})
        fi, li, ei = self._idx[k]
        ent = outs[ei]
        return Launch(outs[fi] if fi >= 0 else None, outs[li], lambda: ent, len(ent), k, lane)

    def step_one(self, k: int, x: np.ndarray) -> tuple[Any, Any, np.ndarray]:
        outs = self._runs[k](self._outputs[k], {"x": x})
        fi, li, ei = self._idx[k]
        return (outs[fi] if fi >= 0 else None), outs[li], outs[ei]

    def run_segment(self, k: int, x: np.ndarray) -> list[np.ndarray]:
        """Bare session call (for overhead measurements): outputs in graph order."""
        return self._runs[k](self._outputs[k], {"x": x})

    def gather(self, t: Any, index: np.ndarray, lane: int = 0) -> Any:
        return t[index]

    def to_host(self, t: Any) -> np.ndarray:
        return np.asarray(t)

    def run_baseline(self, x: np.ndarray) -> np.ndarray:
        if self._baseline is None:
            self._baseline = self._fast_run(self._session(self.artifact.baseline_file(self.precision)))
        return self._baseline(["logits"], {"x": x})[0]

    # -- the single early-exit graph (batch 1) --------------------------------------------------
    @property
    def supports_single_graph(self) -> bool:
        return self.precision == "fp32"  # single.onnx is built from the fp32 segments only

    def load_single(self, thresholds: list[float]) -> None:
        """Open the artifact's single graph with these thresholds (replacing its initializers, no re-export)."""
        from edgebranchy.exits.rule import float32_threshold

        if not self.supports_single_graph:
            raise EdgeBranchyError("the single early-exit graph is fp32 only; with precision fp16 use form='segments'")
        path = self.artifact.single_graph_file()
        entry = self.artifact.single_graph
        ts = [np.array(float32_threshold(t), dtype=np.float32) for t in thresholds]
        names = entry["thresholds"]
        if len(names) != len(ts):
            raise EdgeBranchyError(f"the single graph has {len(names)} thresholds, the runner {len(ts)}")
        if entry.get("threshold_mode", "initializer") == "initializer":
            vals = {n: self._ort.OrtValue.ortvalue_from_numpy(t) for n, t in zip(names, ts)}
            sess = self._session(path, vals)
            self._single_keep = [ts, vals]
            self._single_feed = {}
        else:
            sess = self._session(path)
            self._single_feed = dict(zip(names, ts))
        got = [o.name for o in sess.get_outputs()]
        if got != ["label", "logits", "entropy", "exit"]:
            raise EdgeBranchyError(f"single graph has outputs {got}, expected label, logits, entropy, exit")
        run = self._fast_run(sess)
        self._single = (run, got)

    def run_single(self, x: np.ndarray) -> list[np.ndarray]:
        """One call of the single graph on a batch-1 input: [label, logits, entropy, exit]."""
        run, names = self._single
        feed = self._single_feed
        return run(names, {"x": x, **feed} if feed else {"x": x})

    def describe(self) -> dict:
        return {"backend": self.name, "onnxruntime": self._ort.__version__, "precision": self.precision,
                "options": {k: v for k, v in self.options.items() if k != "precision"},
                "providers_used": self.sessions[0].get_providers(),
                "direct_binding_run": self._runs[0] is not self.sessions[0].run}

    def close(self) -> None:
        self.sessions = []
        self._baseline = None
        self._single = None
