"""TensorRT backend: the artifact's per-segment engines chained on the GPU (pycuda).

Backend tensors are `DeviceTensor`s (tensorrt/memory.py): device memory that never leaves the GPU between
segments. Each launch copies its per-sample entropy and its logits back together (pinned memory, one event),
so the host waits once per exit and then has the answers of the samples that leave. Compaction is one call of
a gather engine (tensorrt/build.py) per segment, whatever the pattern of surviving rows.

Lanes are non-default CUDA streams: one per pipeline stage, at least two (speculation), plus a copy stream for
uploads, so no two stages and no upload share a stream. A launch on one lane that reads a tensor written on
another waits for that tensor's event on the GPU, not on the host. Each (engine, lane) has its own execution
context holding its lane's optimisation profile (tensorrt/lanes.py).

The CUDA primary context (shared with TensorRT and torch) is retained explicitly and made current only around
each call, on whichever thread makes it, so no thread is left with a context on pycuda's stack (pycuda aborts
a thread that ends with one: cuda.hpp `context_stack::~context_stack`). `host_wait` chooses how the host waits
for a read-back: "spin" (a busy core, lowest latency) or "block" (BLOCKING_SYNC events: the thread sleeps);
the choice is recorded in `describe()`, so runs with each can be compared for latency and energy.

Runs on JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edgebranchy.artifact.engines import gather_names, rebuild_hint
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.base import Backend, Launch
from edgebranchy.runtime.backends.declared import TENSORRT as OPTIONS
from edgebranchy.runtime.backends.options import resolve_options
from edgebranchy.tensorrt.single import check_thresholds, open_engine, run_engine
from edgebranchy.tensorrt.lanes import EngineLanes, engine_io, row_index
from edgebranchy.tensorrt.memory import Buffer, DeviceTensor, Events, Pool, Readback

INPUT, INDEX, ROWS = "x", "index", "rows"

#: attributes this module uses on TensorRT objects
TRT_OBJECT_API = frozenset()


class TensorRTBackend(Backend):
    """Runs the artifact's TensorRT engines (built by `edgebranchy build ARTIFACT`)."""

    name = "tensorrt"
    asynchronous = True
    OPTIONS = OPTIONS

    def __init__(self, artifact: Any, options: Optional[dict] = None):
        from edgebranchy.tensorrt.compat import extra_numpy_dtypes, parse_version
        from edgebranchy.tensorrt.device import describe_device, device_facts, import_tensorrt, numpy_dtypes
        from edgebranchy.tensorrt.load import load_engine

        self.artifact = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
        self.options = o = resolve_options(OPTIONS, options, self.name)
        self._closed = True
        trt = import_tensorrt()
        try:
            import pycuda.driver as cuda
        except ImportError as e:
            raise EdgeBranchyError(f"the tensorrt backend needs pycuda ({e}): `pip install pycuda`") from None
        cuda.init()
        device = cuda.Device(0)
        # the primary context (TensorRT's and torch's), retained but not pushed: see _current
        self._trt, self._cuda, self._context = trt, cuda, device.retain_primary_context()
        gpu = describe_device(cuda, device)
        self.pci_bus_id = str(device.pci_bus_id())
        self.facts = device_facts(trt, lambda: gpu)
        want = dict(self.facts)
        for key in ("precision", "device_key"):
            if o[key] is not None:
                want[key] = o[key]
        if o["dla_core"] is not None:
            want["dla_core"] = None if o["dla_core"] < 0 else o["dla_core"]
        with self._current():
            self._loaded = load_engine(self.artifact, want)
        rec = self._loaded.record
        self.device_key, self.record = self._loaded.key, rec
        self.max_batch = int(rec["max_batch"])
        self.fixed_batch = rec.get("fixed_batch")  # DLA engines run one batch size; smaller ones are padded
        self.lanes = int(rec.get("lanes") or (2 if rec.get("profile_sharing") else 1))
        self._copy = self.lanes  # the upload stream's index, after the lanes
        self._dtypes = {**numpy_dtypes(trt), **extra_numpy_dtypes(trt, parse_version(trt.__version__))}
        with self._current():
            self._streams = [cuda.Stream() for _ in range(self.lanes + 1)]  # non-default streams
        self._events = Events(cuda, blocking=o["host_wait"] == "block")
        self._device_pool = Pool(self._device_alloc, self._streams, host=False)
        self._host_pool = Pool(self._host_alloc, self._streams, host=True)
        self._closed = False
        n = self.artifact.num_exits
        classes = len(self.artifact.classes)
        self._segments = [self._engine(f"seg{k}", *self._expected(k)) for k in range(n)]
        self._feature_names = [list(self.artifact.segment_feature_shapes(k)) for k in range(n)]
        self._baseline = self._engine("baseline", [INPUT], {INPUT: self.artifact.input_shape, "logits": (classes,)})
        self._gathers = {}
        for g in gather_names(self.artifact):
            eng = self._engine(g, [INPUT, INDEX], None)
            self._gathers[(eng.io[INPUT][1].str, eng.io[INPUT][2])] = eng
        self._single, self.supports_single_graph, self.single_graph_note = open_engine(self)

    # -- setup -----------------------------------------------------------------------------------
    def _expected(self, k: int) -> Tuple[List[str], Dict[str, tuple]]:
        """Segment k's engine: its input names (several where a split passes several tensors), and every tensor's
        shape without the batch axis."""
        art = self.artifact
        ins = art.segment_input_shapes(k)
        out = {**ins, **art.segment_feature_shapes(k), "logits": (len(art.classes),), "entropy": ()}
        return list(ins), out

    def _engine(self, name: str, inputs: List[str], expected: Optional[Dict[str, tuple]]) -> EngineLanes:
        """The engine `name` with its lanes, refused unless its inputs are `inputs` and its tensors `expected`
        (None: a gather engine, x and index -> rows)."""
        io = engine_io(self._trt, name, self._loaded.engines[name], self._dtypes)
        got = {t: tail for t, (_, _, tail) in io.items()}
        have = [t for t, (is_input, _, _) in io.items() if is_input]
        if sorted(have) != sorted(inputs) or (expected is not None and got != {t: tuple(s) for t, s in expected.items()}) \
                or (expected is None and set(got) != {INPUT, INDEX, ROWS}):
            raise EdgeBranchyError(f"the {name} engine has tensors {got} (inputs {have}); the artifact expects "
                                   f"{expected or 'x, index -> rows'}: {rebuild_hint(self.artifact.root)}")
        eng = EngineLanes(self._trt, name, self._loaded.engines[name], io, self.lanes,
                          bool(self.record.get("profile_sharing")), rebuild_hint(self.artifact.root),
                          lambda: self._loaded.logger.errors, inputs)
        with self._current():
            eng.open(0, self._streams[0])
        return eng

    def _device_alloc(self, nbytes: int) -> Buffer:
        mem = self._cuda.mem_alloc(nbytes)
        return Buffer(mem, int(mem), nbytes)

    def _host_alloc(self, nbytes: int) -> Buffer:
        return Buffer(self._cuda.pagelocked_empty(nbytes, np.uint8), 0, nbytes)

    @contextmanager
    def _current(self):
        """The primary context current on this thread for the duration, and popped after."""
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    # -- helpers ---------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise EdgeBranchyError("the tensorrt backend is closed")

    def _check_lane(self, lane: int) -> int:
        if isinstance(lane, bool) or not isinstance(lane, (int, np.integer)) or not 0 <= lane < self.lanes:
            raise EdgeBranchyError(f"lane must be 0..{self.lanes - 1}, got {lane!r}")
        return int(lane)

    def _check_batch(self, n: int, what: str) -> None:
        if n < 1:
            raise EdgeBranchyError(f"{what}: empty batch")
        if n > self.max_batch:
            raise EdgeBranchyError(f"{what}: batch {n} is larger than the engines' maximum batch {self.max_batch} "
                                   f"(optimisation profile of {self.device_key}); use a smaller batch or rebuild with "
                                   "a larger [tensorrt].max_batch in the device profile")

    def _own(self, t: Any, what: str) -> DeviceTensor:
        if not isinstance(t, DeviceTensor) or t.owner is not self:
            raise EdgeBranchyError(f"{what} needs a tensor of this backend (to_device / launch / gather)")
        return t

    def _event(self, lane: int, timing: bool = False, host: bool = False) -> Any:
        ev = self._events.get(lane, timing, host)
        ev.record(self._streams[lane])
        return ev

    def _new(self, dtype: np.dtype, tail: tuple, batch: int, lane: int) -> DeviceTensor:
        cap = self.max_batch * int(np.prod(tail, dtype=np.int64)) * np.dtype(dtype).itemsize
        return DeviceTensor(self._device_pool.take(max(cap, 1), lane), dtype, (batch, *tail), lane, self)

    def _run_shape(self, t: DeviceTensor) -> tuple:
        # DLA: padded rows are stale data in the buffer's spare capacity, their results ignored (rows are independent)
        return t.shape if not self.fixed_batch else (int(self.fixed_batch), *t.shape[1:])

    def _upload(self, x: np.ndarray, dtype: np.dtype, lane: int) -> DeviceTensor:
        x = np.ascontiguousarray(x, dtype=dtype)
        t = self._new(dtype, x.shape[1:], len(x), lane)
        host = self._host_pool.take(t._buf.nbytes, lane)
        staged = host.mem[:x.nbytes]
        staged[...] = x.reshape(-1).view(np.uint8)
        self._cuda.memcpy_htod_async(t.ptr, staged, self._streams[lane])
        t.ready = self._event(lane)
        t._buf.uses.append((lane, t.ready))
        host.uses.append((lane, t.ready))
        self._host_pool.give(host)
        return t

    def _readback(self, tensors: list, lane: int) -> Readback:
        """Copy `tensors` (written on `lane`) to pinned memory behind one event the host can wait on."""
        hosts = [self._host_pool.take(t._buf.nbytes, lane) for t in tensors]
        for t, h in zip(tensors, hosts):
            self._cuda.memcpy_dtoh_async(h.mem[:t.nbytes], t.ptr, self._streams[lane])
        ev = self._event(lane, host=True)
        for t, h in zip(tensors, hosts):
            t._buf.uses.append((lane, ev))
            h.uses.append((lane, ev))
        return Readback(self._host_pool, ev, hosts, tensors)

    def _wait_for(self, t: DeviceTensor, lane: int) -> None:
        if t.lane != lane:
            self._streams[lane].wait_for_event(t.ready)

    def _enqueue(self, eng: EngineLanes, lane: int, x: Any, timing: Optional[dict]):
        """Run segment engine `eng` on x (a tensor, or the tuple of tensors a split passes on, in the order of the
        engine's inputs) on `lane`; returns (outputs, start event or None, done event)."""
        xs = x if isinstance(x, tuple) else (x,)
        if len(xs) != len(eng.inputs):
            raise EdgeBranchyError(f"{eng.name} takes {len(eng.inputs)} tensor(s), got {len(xs)}")
        for name, t in zip(eng.inputs, xs):
            _, want_dtype, tail = eng.io[name]
            self._own(t, eng.name)
            if t.dtype != want_dtype or t.shape[1:] != tail or t.batch != xs[0].batch:
                raise EdgeBranchyError(f"{eng.name}: input {name} {t.shape} {t.dtype} does not fit the engine's "
                                       f"(N, {', '.join(map(str, tail))}) {want_dtype}"
                                       + ("" if t.batch == xs[0].batch else f" with N = {xs[0].batch}"))
        b = xs[0].batch
        self._check_batch(b, eng.name)
        for t in xs:
            self._wait_for(t, lane)
        outs = {n: self._new(eng.io[n][1], eng.io[n][2], b, lane) for n in eng.outputs}
        start = self._event(lane, timing=True) if timing is not None else None
        eng.run(lane, self._streams[lane], {n: self._run_shape(t) for n, t in zip(eng.inputs, xs)},
                {**{n: t.ptr for n, t in zip(eng.inputs, xs)}, **{n: t.ptr for n, t in outs.items()}},
                f"{eng.name} (batch {b})")
        done = self._event(lane, timing=timing is not None)
        for t in xs:
            t._buf.uses.append((lane, done))
        for t in outs.values():
            t.ready = done
            t._buf.uses.append((lane, done))
        return outs, start, done

    # -- the Backend contract --------------------------------------------------------------------
    @property
    def num_segments(self) -> int:
        return len(self._segments)

    def to_device(self, x: np.ndarray) -> DeviceTensor:
        self._check_open()
        _, dtype, tail = self._segments[0].io[INPUT]
        if not isinstance(x, np.ndarray) or x.shape[1:] != tail or x.ndim != len(tail) + 1:
            raise EdgeBranchyError(f"input must be an array of shape (N, {', '.join(map(str, tail))}), "
                                   f"got {getattr(x, 'shape', type(x).__name__)}")
        self._check_batch(len(x), "input")
        with self._current():
            return self._upload(x, dtype, self._copy)  # the copy stream: overlaps the lanes' work

    def launch(self, k: int, x: Any, lane: int = 0) -> Launch:
        self._check_open()
        if not 0 <= k < len(self._segments):
            raise EdgeBranchyError(f"segment {k} does not exist (0..{len(self._segments) - 1})")
        lane = self._check_lane(lane)
        timing: Optional[dict] = {} if self.options["timing"] else None
        with self._current():
            outs, start, done = self._enqueue(self._segments[k], lane, x, timing)
            ent, logits = outs["entropy"], outs["logits"]
            back = self._readback([ent, logits], lane)
        logits.readback = (back, 1)
        result: Dict[str, np.ndarray] = {}

        def entropy() -> np.ndarray:
            if "e" not in result:
                t0 = time.perf_counter()
                with self._current():
                    back.wait()
                    if timing is not None:
                        timing["gpu_ms"] = float(start.time_till(done))
                if timing is not None:
                    timing["wait_ms"] = (time.perf_counter() - t0) * 1e3
                result["e"] = back.read(0)
            return result["e"]

        feats = [outs[n] for n in self._feature_names[k]]
        return Launch(feats[0] if len(feats) == 1 else (tuple(feats) or None), logits, entropy, ent.batch, k, lane,
                      timing if timing is not None else {})

    def gather(self, t: Any, index: np.ndarray, lane: int = 0) -> Any:
        if isinstance(t, tuple):  # every tensor crossing a split, each compacted by its gather engine
            return tuple(self.gather(one, index, lane) for one in t)
        self._check_open()
        lane = self._check_lane(lane)
        t = self._own(t, "gather")
        idx = row_index(index, t.batch)
        eng = self._gathers.get((t.dtype.str, t.shape[1:]))
        if eng is None:
            raise EdgeBranchyError(f"no gather engine for rows of {t.shape[1:]} {t.dtype}; "
                                   f"{rebuild_hint(self.artifact.root)}")
        with self._current():
            out = self._new(t.dtype, t.shape[1:], int(idx.size), lane)
            self._wait_for(t, lane)
            if idx.size:
                self._gather_rows(eng, t, idx, out, lane)
            out.ready = self._event(lane)
            out._buf.uses.append((lane, out.ready))
            t._buf.uses.append((lane, out.ready))
        return out

    def _gather_rows(self, eng: EngineLanes, t: DeviceTensor, idx: np.ndarray, out: DeviceTensor, lane: int) -> None:
        """out = t[idx] on the device: the index uploaded on `lane`, then one gather engine call."""
        nbytes = 4 * self.max_batch
        host, dev = self._host_pool.take(nbytes, lane), self._device_pool.take(nbytes, lane)
        staged = host.mem[:4 * idx.size]
        staged.view(np.int32)[:] = idx
        self._cuda.memcpy_htod_async(dev.ptr, staged, self._streams[lane])
        eng.run(lane, self._streams[lane], {INPUT: self._run_shape(t), INDEX: (int(idx.size),)},
                {INPUT: t.ptr, INDEX: dev.ptr, ROWS: out.ptr}, f"{eng.name} ({idx.size} of {t.batch} rows)")
        ev = self._event(lane)
        for buf, pool in ((host, self._host_pool), (dev, self._device_pool)):
            buf.uses.append((lane, ev))
            pool.give(buf)

    def to_host(self, t: Any) -> np.ndarray:
        self._check_open()
        t = self._own(t, "to_host")
        if t.batch == 0:
            return np.empty(t.shape, dtype=t.dtype)
        with self._current():
            back, i = t.readback if t.readback is not None else (self._readback([t], t.lane), 0)
            back.wait()
        return back.read(i)

    def exit_logits(self, launch: Launch, pos: np.ndarray) -> np.ndarray:
        """The leaving rows' logits from the launch's read-back (copied with its entropy): no second wait."""
        lg = self.to_host(launch.logits)
        return lg if len(pos) == launch.batch else lg[pos]

    def run_baseline(self, x: np.ndarray) -> np.ndarray:
        self._check_open()
        eng = self._baseline
        _, dtype, tail = eng.io[INPUT]
        if not isinstance(x, np.ndarray) or x.shape[1:] != tail or x.ndim != len(tail) + 1:
            raise EdgeBranchyError(f"baseline input must have shape (N, {', '.join(map(str, tail))})")
        self._check_batch(len(x), "baseline")
        with self._current():
            outs, _, _ = self._enqueue(eng, 0, self._upload(x, dtype, self._copy), None)
            return self.to_host(outs["logits"])

    def load_single(self, thresholds: list) -> None:
        check_thresholds(self, thresholds)

    def run_single(self, x: Any) -> list:
        self._check_open()
        return run_engine(self, self._single, x)

    def synchronize(self) -> None:
        if self._closed:
            return
        with self._current():
            for s in self._streams:
                s.synchronize()

    def describe(self) -> dict:
        rec = self.record
        out = {"backend": self.name, "tensorrt": self.facts["tensorrt"], "gpu": self.facts["gpu"],
               "compute_capability": self.facts["compute_capability"], "pci_bus_id": self.pci_bus_id,
               "device_key": self.device_key, "precision": rec.get("precision"),
               "precision_mode": rec.get("precision_mode"), "dla_core": rec.get("dla_core"),
               "gpu_fallback": rec.get("gpu_fallback"), "max_batch": self.max_batch,
               "builder_optimization_level": rec.get("builder_optimization_level"), "lanes": self.lanes,
               "copy_stream": True, "profile_sharing": rec.get("profile_sharing"),
               "lane_profiles": rec.get("lane_profiles", 1), "cuda_binding": "pycuda",
               "cuda_context": "primary, retained; current only around each call",
               "host_wait": self.options["host_wait"], "timing": self.options["timing"],
               "single_graph": self.supports_single_graph, "single_graph_note": self.single_graph_note}
        if not self._closed:
            out["device_buffers"] = self._device_pool.stats()
            out["pinned_buffers"] = self._host_pool.stats()
        return out

    def close(self) -> None:
        if self._closed:
            return
        with self._current():
            for s in self._streams:
                s.synchronize()
            self._closed = True
            self._device_pool.close()
            self._host_pool.close()
            self._events.close()
            for eng in self._segments + [self._baseline] + list(self._gathers.values()) + [self._single]:
                if eng is not None:
                    eng.close()
            self._segments, self._gathers, self._single = [], {}, None
            self._loaded.engines.clear()

