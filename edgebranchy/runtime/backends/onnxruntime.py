"""ONNX Runtime backend (CPU): one InferenceSession per segment, numpy arrays as backend tensors."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.base import Backend, Launch
from edgebranchy.runtime.backends.declared import ONNXRUNTIME as OPTIONS, ORT_LEVELS
from edgebranchy.runtime.backends.options import resolve_options


def _dims(shape) -> list:
    return [d if isinstance(d, int) else None for d in shape]  # symbolic dims ("N") -> None


def _shape_differs(got: list, want: list | None) -> bool:
    """True when a known (non-batch) dimension of `got` differs from the manifest's `want` (no batch axis)."""
    if want is None:
        return False
    return len(got) != len(want) + 1 or any(g is not None and g != w for g, w in zip(got[1:], want))


def check_signature(sess, path, inputs: dict, n_classes: int, features: dict) -> None:
    """A graph's inputs and outputs must have the names and shapes the manifest promises (a replaced graph
    with an updated hash is caught here, before it answers with another model's meaning). `inputs` and
    `features` map each tensor name to its shape without the batch axis (None: not recorded)."""
    ins = sess.get_inputs()
    names = [i.name for i in ins]
    if sorted(names) != sorted(inputs):
        raise EdgeBranchyError(f"{path}: the graph takes {names}, the manifest says {sorted(inputs)}")
    for i in ins:
        want = inputs[i.name]
        if _shape_differs(_dims(i.shape), want):
            raise EdgeBranchyError(f"{path}: input {i.name} has shape {i.shape}, but the manifest says "
                                   f"(N, {', '.join(map(str, want))})")
    for o in sess.get_outputs():
        d = _dims(o.shape)
        if o.name == "logits" and (len(d) != 2 or (d[1] is not None and d[1] != n_classes)):
            raise EdgeBranchyError(f"{path}: logits have shape {o.shape}, but the manifest lists {n_classes} classes")
        if o.name == "entropy" and len(d) != 1:
            raise EdgeBranchyError(f"{path}: entropy has shape {o.shape}, expected one value per sample")
        if o.name in features and _shape_differs(d, features[o.name]):
            want = features[o.name]
            raise EdgeBranchyError(f"{path}: {o.name} has shape {o.shape}, but the manifest says "
                                   f"(N, {', '.join(map(str, want))})")


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
        # 0: as many threads as this process may really use (affinity, cgroup quota), not ONNX Runtime's own
        # default (the host's cores, spinning); recorded in describe()
        from edgebranchy.util.cpus import usable_cpus

        self.cpus = usable_cpus()
        self.intra_op_threads = o["intra_op_threads"] or self.cpus.count
        self.sessions = [self._session(artifact.segment_file(k, self.precision)) for k in range(artifact.num_exits)]
        self._outputs = [[o.name for o in s.get_outputs()] for s in self.sessions]
        self._inputs = [artifact.segment_inputs(k) for k in range(artifact.num_exits)]
        for k, (names, sess) in enumerate(zip(self._outputs, self.sessions)):
            want = artifact.segment_outputs(k)
            if sorted(names) != sorted(want):
                raise EdgeBranchyError(f"segment {k} graph has outputs {names}, expected {want}")
            check_signature(sess, artifact.segment_file(k, self.precision), artifact.segment_input_shapes(k),
                            len(artifact.classes), artifact.segment_feature_shapes(k))
        # The public InferenceSession.run re-validates feed names and WebGPU capture state on every
        # call (45.3 vs 41.3 µs for B-LeNet's segment 0, benchmarks/results/call_profile.md); the runner
        # validates inputs once itself, so it calls the binding's run directly where it exists, the public
        # run otherwise (recorded in describe()).
        self._runs = [self._fast_run(s) for s in self.sessions]
        # where features (one index, or a tuple of them for several tensors), logits and entropy sit
        self._idx = [(_feature_index(n), n.index("logits"), n.index("entropy")) for n in self._outputs]
        self._baseline = None
        self._single = None
        self._single_feed: dict = {}
        self._single_keep: list = []  # arrays handed to add_initializer must outlive the session
        self._bound = threading.local()  # batch-1 bindings (ort_bound), one set per thread

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
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = o["inter_op_threads"]
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[o["graph_optimization"]])
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

    @property
    def threads_per_call(self) -> int:
        return self.intra_op_threads

    def to_device(self, x: np.ndarray) -> np.ndarray:
        return x

    def _feed(self, k: int, x: Any) -> dict:
        # several tensors cross this split (from_model): x is the tuple the previous launch passed on
        return dict(zip(self._inputs[k], x)) if isinstance(x, tuple) else {self._inputs[k][0]: x}

    def launch(self, k: int, x: Any, lane: int = 0) -> Launch:
        outs = self._runs[k](self._outputs[k], self._feed(k, x))
        fi, li, ei = self._idx[k]
        ent = outs[ei]
        feats = None if fi is None else tuple(outs[i] for i in fi) if isinstance(fi, tuple) else outs[fi]
        return Launch(feats, outs[li], lambda: ent, len(ent), k, lane)

    def _chain(self):
        """This thread's batch-1 bindings of the segments (False where they cannot be bound or are off)."""
        chain = False
        if self.options["iobinding"]:
            from edgebranchy.runtime.backends.ort_bound import bind_chain

            chain = bind_chain(self._ort, self.sessions, self._outputs, [i[0] for i in self._idx]) or False
        self._bound.chain = chain
        return chain

    def step_one(self, k: int, x: Any) -> tuple[Any, Any, np.ndarray]:
        """Segment k at batch 1. Through IOBinding the outputs are this thread's reused buffers, valid until
        its next batch-1 call: the runner copies what it keeps."""
        chain = self._bound.__dict__.get("chain")
        if chain is None:
            chain = self._chain()
        if chain:
            call = chain[k]
            if call.feed(x):
                call.run()
                fi, li, ei = self._idx[k]
                outs = call.outs
                return (None if fi is None else outs[fi]), outs[li], outs[ei]
        outs = self._runs[k](self._outputs[k], self._feed(k, x))
        fi, li, ei = self._idx[k]
        feats = None if fi is None else tuple(outs[i] for i in fi) if isinstance(fi, tuple) else outs[fi]
        return feats, outs[li], outs[ei]

    def run_segment(self, k: int, x: Any) -> list[np.ndarray]:
        """Bare session call (for overhead measurements): outputs in graph order."""
        return self._runs[k](self._outputs[k], self._feed(k, x))

    def gather(self, t: Any, index: np.ndarray, lane: int = 0) -> Any:
        return tuple(a[index] for a in t) if isinstance(t, tuple) else t[index]

    def to_host(self, t: Any) -> np.ndarray:
        return np.asarray(t)

    def run_baseline(self, x: np.ndarray) -> np.ndarray:
        if self._baseline is None:
            path = self.artifact.baseline_file(self.precision)
            sess = self._session(path)
            names = [o.name for o in sess.get_outputs()]
            if names != ["logits"]:
                raise EdgeBranchyError(f"{path}: the baseline graph has outputs {names}, expected ['logits']")
            check_signature(sess, path, {"x": self.artifact.input_shape}, len(self.artifact.classes), {})
            self._baseline = self._fast_run(sess)
            self._baseline_sess = sess
        if len(x) == 1:
            outs = self._run_bound("baseline", self._baseline_sess, ["logits"], x)
            if outs is not None:
                return outs[0]
        return self._baseline(["logits"], {"x": x})[0]

    def _run_bound(self, key: str, sess, names: list[str], x: np.ndarray) -> list[np.ndarray] | None:
        """One batch-1 call of `sess` through this thread's binding `key` (bound on first use), as copies
        of the reused buffers; None where it cannot be bound or x does not fit (the caller runs it plainly)."""
        if not self.options["iobinding"]:
            return None
        call = self._bound.__dict__.get(key)
        if call is None:
            from edgebranchy.runtime.backends.ort_bound import bind_one

            call = bind_one(self._ort, sess, names) or False
            setattr(self._bound, key, call)
        if not (call and call.feed(x)):
            return None
        call.run()
        return [o.copy() for o in call.outs]  # the buffers are reused by the next call

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
        self._single_sess = sess
        self._bound = threading.local()  # every thread's bindings are of the sessions open now

    def run_single(self, x: np.ndarray) -> list[np.ndarray]:
        """One call of the single graph on a batch-1 input: [label, logits, entropy, exit]."""
        if not self._single_feed:  # thresholds as initializers: the input is the only feed
            outs = self._run_bound("single", self._single_sess, self._single[1], x)
            if outs is not None:
                return outs
        run, names = self._single
        feed = self._single_feed
        return run(names, {"x": x, **feed} if feed else {"x": x})

    def describe(self) -> dict:
        return {"backend": self.name, "onnxruntime": self._ort.__version__, "precision": self.precision,
                "options": {k: v for k, v in self.options.items() if k != "precision"},
                "providers_used": self.sessions[0].get_providers(),
                "intra_op_threads_used": self.intra_op_threads, "cpus": self.cpus.to_dict(),
                "direct_binding_run": self._runs[0] is not self.sessions[0].run,
                "batch1_iobinding": bool(self.options["iobinding"] and (self._bound.__dict__.get("chain")
                                                                         or self._chain()))}

    def close(self) -> None:
        self.sessions = []
        self._baseline = None
        self._single = None
        self._bound = threading.local()


def _feature_index(names: list[str]):
    """Index of `features` in a segment's outputs, a tuple of the `features.i` indices, or None (last segment)."""
    if "features" in names:
        return names.index("features")
    multi = sorted((int(n.split(".", 1)[1]), i) for i, n in enumerate(names) if n.startswith("features."))
    return tuple(i for _, i in multi) or None
