"""TensorRT backend: the artifact's per-segment engines chained on the GPU (pycuda, two lanes).

Backend tensors are `DeviceTensor`s: device memory that never leaves the GPU
between segments. Only each launch's per-sample entropy is copied back (into
pinned memory) for the host's decision; compaction copies the surviving rows on
the device (one device-to-device copy per run of consecutive rows).

Memory: device and pinned host buffers are allocated at the engines' maximum
batch and recycled through pools, so steady-state inference allocates nothing.
A buffer goes back to its pool when the last tensor using it is dropped; the
next user first waits (on the GPU) for the events of every op that touched it.

Lanes are non-default CUDA streams; a launch on one lane that reads a tensor
written on the other waits for that tensor's event on the GPU, not on the host.
Each (segment, lane) has its own execution context, so both lanes may run the
same engine at once. Two contexts can share the engine's one optimisation
profile only where the engines were built for it (TensorRT 10+, or 8.6/9.x
with PROFILE_SHARING_0806: the record's `profile_sharing`); elsewhere (8.5)
the backend has one lane.

Runs on JetPack 5 (Python 3.8): no 3.10-only syntax at runtime.
"""
from __future__ import annotations

import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edgebranchy.artifact.engines import rebuild_hint
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.runtime.backends.base import Backend, Launch

DEFAULTS = {
    "precision": None,    # fp32 | fp16: which engine set (needed only when both were built)
    "dla_core": None,     # -1 (GPU) or a DLA core: which engine set
    "device_key": None,   # pick one engine set by its key
    "timing": False,      # record GPU time per launch (cuda events) in Launch.timing
}
LANES = 2
INPUT = "x"

#: attributes this module uses on TensorRT objects (engines, execution contexts)
TRT_OBJECT_API = frozenset({
    "num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype", "get_tensor_shape",
    "create_execution_context", "set_input_shape", "set_tensor_address", "execute_async_v3",
    "active_optimization_profile",
})


def row_runs(index: np.ndarray) -> List[Tuple[int, int, int]]:
    """(source row, destination row, length) for each run of consecutive source rows in `index`."""
    idx = np.asarray(index, dtype=np.int64)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [idx.size]))
    return [(int(idx[s]), int(s), int(e - s)) for s, e in zip(starts, ends)]


class _Buffer:
    """One allocation (device or pinned host) and the (lane, event) of every op that touched it since
    it was last handed out."""

    __slots__ = ("mem", "ptr", "nbytes", "uses")

    def __init__(self, mem: Any, ptr: int, nbytes: int):
        self.mem, self.ptr, self.nbytes = mem, ptr, nbytes
        self.uses: List[Tuple[int, Any]] = []


class _Events:
    """CUDA events owned by the backend for its whole life, recorded again in turn (a ring per lane and kind).

    pycuda frees an event when it is collected, which needs the context current on the collecting thread;
    launches made on pipeline threads would otherwise drop their events there and leak them ("could not be
    cleaned up"). Re-recording an event on the same lane only moves it later on that stream, so a waiter waits
    at most longer, never too little. Sync-only events are created with DISABLE_TIMING (cheaper); timing
    ones only when timing is on. All are released in `close()`, with the context current.
    """

    def __init__(self, cuda: Any, size: int = 512):
        self._cuda, self._size = cuda, size
        self._rings: Dict[Tuple[int, bool], List[Any]] = {}
        self._next: Dict[Tuple[int, bool], int] = {}
        self._lock = threading.Lock()

    def get(self, lane: int, timing: bool) -> Any:
        key = (lane, timing)
        with self._lock:
            ring = self._rings.setdefault(key, [])
            if len(ring) < self._size:
                flags = 0 if timing else self._cuda.event_flags.DISABLE_TIMING
                ev = self._cuda.Event(flags)
                ring.append(ev)
                return ev
            i = self._next.get(key, 0)
            self._next[key] = (i + 1) % self._size
            return ring[i]

    def close(self) -> None:
        with self._lock:
            self._rings, self._next = {}, {}


class _Pool:
    """Recycles buffers by size, least recently returned first (an upload does not re-take the buffer whose
    copy is still in flight). Device buffers wait for earlier users on the GPU; host buffers on the host."""

    def __init__(self, alloc, streams: list, host: bool):
        self._alloc, self._streams, self._host = alloc, streams, host
        self._free: Dict[int, List[_Buffer]] = {}
        self._all: List[_Buffer] = []
        self._lock = threading.Lock()
        self.closed = False

    def take(self, nbytes: int, lane: int) -> _Buffer:
        with self._lock:
            free = self._free.get(nbytes)
            buf = free.pop(0) if free else None
        if buf is None:
            buf = self._alloc(nbytes)
            with self._lock:
                self._all.append(buf)
            return buf
        for used_on, event in buf.uses:
            if self._host:
                event.synchronize()
            elif used_on != lane:
                self._streams[lane].wait_for_event(event)
        buf.uses = []
        return buf

    def give(self, buf: _Buffer) -> None:
        with self._lock:
            if not self.closed:
                self._free.setdefault(buf.nbytes, []).append(buf)

    def stats(self) -> dict:
        with self._lock:
            return {"buffers": len(self._all), "bytes": sum(b.nbytes for b in self._all)}

    def close(self) -> None:
        with self._lock:
            self.closed = True
            bufs, self._all, self._free = self._all, [], {}
        for b in bufs:
            # device: DeviceAllocation.free; pinned: the HostAllocation is the array's .base (freed now, not by GC)
            free = getattr(b.mem, "free", None) or getattr(getattr(b.mem, "base", None), "free", None)
            if free is not None:
                free()


class DeviceTensor:
    """A tensor in GPU memory: a pooled allocation, dtype, shape, the lane (stream) that writes it and
    the event recorded when it is ready."""

    __slots__ = ("_buf", "dtype", "shape", "lane", "ready", "owner", "__weakref__")

    def __init__(self, buf: _Buffer, dtype: np.dtype, shape: tuple, lane: int, owner: "TensorRTBackend"):
        self._buf, self.dtype, self.shape, self.lane, self.owner = buf, np.dtype(dtype), tuple(shape), lane, owner
        self.ready: Any = None
        weakref.finalize(self, owner._device_pool.give, buf)

    @property
    def ptr(self) -> int:
        return self._buf.ptr

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.batch * self.row_bytes

    def __len__(self) -> int:
        return self.batch

    def __repr__(self) -> str:
        return f"DeviceTensor(shape={self.shape}, dtype={self.dtype}, lane={self.lane}, ptr=0x{self.ptr:x})"


class _Segment:
    """One engine, its I/O description and one execution context per lane."""

    def __init__(self, name: str, engine: Any, contexts: list, io: Dict[str, Tuple[bool, np.dtype, tuple]]):
        self.name, self.engine, self.contexts, self.io = name, engine, contexts, io
        self.locks = [threading.Lock() for _ in contexts]
        self.outputs = [n for n, (is_input, _, _) in io.items() if not is_input]


class TensorRTBackend(Backend):
    """Runs the artifact's TensorRT engines (built by `edgebranchy export ARTIFACT --tensorrt`)."""

    name = "tensorrt"
    asynchronous = True
    lanes = LANES

    def __init__(self, artifact: Any, options: Optional[dict] = None):
        from edgebranchy.tensorrt.device import describe_device, device_facts, import_tensorrt, numpy_dtypes
        from edgebranchy.tensorrt.load import load_engine

        self.artifact = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
        unknown = sorted(set(options or {}) - set(DEFAULTS))
        if unknown:
            raise EdgeBranchyError(f"unknown tensorrt option(s): {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
        self.options = {**DEFAULTS, **(options or {})}
        o = self.options
        if o["precision"] not in (None, "fp32", "fp16"):
            raise EdgeBranchyError(f"tensorrt option precision must be fp32 or fp16, got {o['precision']!r}")
        if o["dla_core"] is not None and (isinstance(o["dla_core"], bool) or not isinstance(o["dla_core"], int)
                                          or o["dla_core"] < -1):
            raise EdgeBranchyError(f"tensorrt option dla_core must be -1 (GPU) or a DLA core, got {o['dla_core']!r}")
        if not isinstance(o["timing"], bool):
            raise EdgeBranchyError("tensorrt option timing must be true or false")
        self._closed = True
        trt = import_tensorrt()
        try:
            import pycuda.autoprimaryctx as primary  # shares the primary context with TensorRT (not autoinit)
            import pycuda.driver as cuda
        except ImportError as e:
            raise EdgeBranchyError(f"the tensorrt backend needs pycuda ({e}): `pip install pycuda`") from None
        self._trt, self._cuda, self._context = trt, cuda, primary.context
        gpu = describe_device(cuda, primary.device)
        self.facts = device_facts(trt, lambda: gpu)
        want = dict(self.facts)
        if o["precision"] is not None:
            want["precision"] = o["precision"]
        if o["dla_core"] is not None:
            want["dla_core"] = None if o["dla_core"] < 0 else o["dla_core"]
        if o["device_key"] is not None:
            want["device_key"] = o["device_key"]
        self._loaded = load_engine(self.artifact, want)
        rec = self._loaded.record
        self.device_key, self.record = self._loaded.key, rec
        self.max_batch = int(rec["max_batch"])
        self.fixed_batch = rec.get("fixed_batch")  # DLA engines run one batch size; smaller ones are padded
        self.lanes = LANES if rec.get("profile_sharing") else 1
        self._dtypes = numpy_dtypes(trt)
        with self._current():
            self._streams = [cuda.Stream() for _ in range(self.lanes)]  # non-default streams, one per lane
        self._events = _Events(cuda)
        self._device_pool = _Pool(self._device_alloc, self._streams, host=False)
        self._host_pool = _Pool(self._host_alloc, self._streams, host=True)
        self._closed = False
        n = self.artifact.num_exits
        self._segments = [self._segment(f"seg{k}", self.lanes, self._expected(k)) for k in range(n)]
        classes = len(self.artifact.classes)
        self._baseline = self._segment("baseline", 1, {INPUT: self.artifact.input_shape, "logits": (classes,)})

    # -- setup -----------------------------------------------------------------------------------
    def _expected(self, k: int) -> Dict[str, tuple]:
        seg = self.artifact.manifest["segments"][k]
        out = {INPUT: tuple(seg["input_shape"])}
        if k < self.artifact.num_exits - 1:
            out["features"] = tuple(seg["feature_shape"])
        out["logits"] = (len(self.artifact.classes),)
        out["entropy"] = ()
        return out

    def _segment(self, name: str, lanes: int, expected: Dict[str, tuple]) -> _Segment:
        trt = self._trt
        engine = self._loaded.engines[name]
        io: Dict[str, Tuple[bool, np.dtype, tuple]] = {}
        for i in range(engine.num_io_tensors):
            t = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(t) == trt.TensorIOMode.INPUT
            dt = engine.get_tensor_dtype(t)
            if dt not in self._dtypes:
                raise EdgeBranchyError(f"{name} engine: tensor {t!r} has data type {dt}, which this backend "
                                       "does not handle")
            io[t] = (is_input, self._dtypes[dt], tuple(int(d) for d in engine.get_tensor_shape(t))[1:])
        got = {t: tail for t, (_, _, tail) in io.items()}
        inputs = [t for t, (is_input, _, _) in io.items() if is_input]
        if inputs != [INPUT] or got != {t: tuple(s) for t, s in expected.items()}:
            raise EdgeBranchyError(f"the {name} engine has tensors {got} (inputs {inputs}); the artifact expects "
                                   f"{expected} with input {INPUT!r}: rebuild the engines")
        with self._current():
            contexts = [engine.create_execution_context() for _ in range(lanes)]
        if any(c is None for c in contexts):
            raise EdgeBranchyError(f"TensorRT could not create an execution context for {name} (out of GPU memory?)")
        held = [c.active_optimization_profile for c in contexts]
        if any(p != 0 for p in held):
            raise EdgeBranchyError(f"the {name} engine gave its execution contexts optimisation profiles {held}: "
                                   "a context without a profile (-1) cannot run (TensorRT 8.5/8.6 without profile "
                                   f"sharing); {rebuild_hint(self.artifact.root)}")
        return _Segment(name, engine, contexts, io)

    def _device_alloc(self, nbytes: int) -> _Buffer:
        mem = self._cuda.mem_alloc(nbytes)
        return _Buffer(mem, int(mem), nbytes)

    def _host_alloc(self, nbytes: int) -> _Buffer:
        mem = self._cuda.pagelocked_empty(nbytes, np.uint8)
        return _Buffer(mem, 0, nbytes)

    @contextmanager
    def _current(self):
        """Make the primary context current in this thread for the duration (pipeline threads)."""
        if self._cuda.Context.get_current() is None:
            self._context.push()
            try:
                yield
            finally:
                self._cuda.Context.pop()
        else:
            yield

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

    def _event(self, lane: int, timing: bool = False) -> Any:
        ev = self._events.get(lane, timing)
        ev.record(self._streams[lane])
        return ev

    def _new(self, dtype: np.dtype, tail: tuple, batch: int, lane: int) -> DeviceTensor:
        cap = self.max_batch * int(np.prod(tail, dtype=np.int64)) * np.dtype(dtype).itemsize
        return DeviceTensor(self._device_pool.take(max(cap, 1), lane), dtype, (batch, *tail), lane, self)

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

    def _download(self, t: DeviceTensor) -> Tuple[Any, _Buffer]:
        """Enqueue the copy of t into a pinned buffer on t's lane; returns (event, buffer)."""
        host = self._host_pool.take(t._buf.nbytes, t.lane)
        self._cuda.memcpy_dtoh_async(host.mem[:t.nbytes], t.ptr, self._streams[t.lane])
        ev = self._event(t.lane)
        t._buf.uses.append((t.lane, ev))
        host.uses.append((t.lane, ev))
        return ev, host

    def _read(self, t: DeviceTensor, host: _Buffer) -> np.ndarray:
        out = host.mem[:t.nbytes].view(t.dtype).reshape(t.shape).copy()
        self._host_pool.give(host)
        return out

    def _enqueue(self, seg: _Segment, lane: int, x: DeviceTensor, timing: Optional[dict]
                 ) -> Tuple[Dict[str, DeviceTensor], Any, Any]:
        """Run `seg` on x on `lane`; returns (outputs, start event or None, done event)."""
        stream = self._streams[lane]
        is_input, want_dtype, tail = seg.io[INPUT]
        if not isinstance(x, DeviceTensor) or x.owner is not self:
            raise EdgeBranchyError(f"{seg.name}: x must be a tensor of this backend (to_device / launch / gather)")
        if x.dtype != want_dtype or x.shape[1:] != tail:
            raise EdgeBranchyError(f"{seg.name}: input {x.shape} {x.dtype} does not fit the engine's "
                                   f"(N, {', '.join(map(str, tail))}) {want_dtype}")
        b = x.batch
        self._check_batch(b, seg.name)
        if x.lane != lane:
            stream.wait_for_event(x.ready)
        outs = {n: self._new(seg.io[n][1], seg.io[n][2], b, lane) for n in seg.outputs}
        ctx = seg.contexts[lane]
        start = None
        with seg.locks[lane]:
            run_shape = x.shape if not self.fixed_batch else (int(self.fixed_batch), *x.shape[1:])
            # padded rows: stale data in the buffer's spare capacity, results ignored (rows are independent)
            if not ctx.set_input_shape(INPUT, run_shape):
                raise EdgeBranchyError(f"{seg.name}: TensorRT refused input shape {x.shape} on lane {lane} (profile "
                                       f"{ctx.active_optimization_profile}, shapes {self.record.get('profiles', {}).get(seg.name)}); "
                                       + "; ".join(self._loaded.logger.errors[-2:]))
            ctx.set_tensor_address(INPUT, x.ptr)
            for n, t in outs.items():
                ctx.set_tensor_address(n, t.ptr)
            if timing is not None:
                start = self._event(lane, timing=True)
            if not ctx.execute_async_v3(stream.handle):
                raise EdgeBranchyError(f"TensorRT failed to enqueue {seg.name} (batch {b})")
        done = self._event(lane, timing=timing is not None)
        x._buf.uses.append((lane, done))
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
            return self._upload(x, dtype, 0)

    def launch(self, k: int, x: Any, lane: int = 0) -> Launch:
        self._check_open()
        if not 0 <= k < len(self._segments):
            raise EdgeBranchyError(f"segment {k} does not exist (0..{len(self._segments) - 1})")
        lane = self._check_lane(lane)
        timing: Optional[dict] = {} if self.options["timing"] else None
        with self._current():
            outs, start, done = self._enqueue(self._segments[k], lane, x, timing)
            ent = outs["entropy"]
            copied, host = self._download(ent)
        b = ent.batch
        result: Dict[str, np.ndarray] = {}
        holder = _Readback(self, host)

        def entropy() -> np.ndarray:
            if "e" not in result:
                t0 = time.perf_counter()
                with self._current():
                    copied.synchronize()
                    if timing is not None:
                        timing["gpu_ms"] = float(start.time_till(done))
                result["e"] = holder.read(ent)
                if timing is not None:
                    timing["wait_ms"] = (time.perf_counter() - t0) * 1e3
            return result["e"]

        return Launch(outs.get("features"), outs["logits"], entropy, b, k, lane,
                      timing if timing is not None else {})

    def gather(self, t: Any, index: np.ndarray, lane: int = 0) -> DeviceTensor:
        self._check_open()
        lane = self._check_lane(lane)
        if not isinstance(t, DeviceTensor) or t.owner is not self:
            raise EdgeBranchyError("gather needs a tensor of this backend")
        idx = np.asarray(index)
        if idx.dtype == np.bool_:
            if idx.shape != (t.batch,):
                raise EdgeBranchyError(f"boolean index of shape {idx.shape} for a batch of {t.batch}")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise EdgeBranchyError("gather index must be a 1-D array of row numbers")
        if idx.size and (idx.min() < 0 or idx.max() >= t.batch):
            raise EdgeBranchyError(f"gather index out of range for a batch of {t.batch}")
        with self._current():
            stream = self._streams[lane]
            if t.lane != lane:
                stream.wait_for_event(t.ready)
            out = self._new(t.dtype, t.shape[1:], int(idx.size), lane)
            row = t.row_bytes
            for src, dst, n in row_runs(idx):
                self._cuda.memcpy_dtod_async(out.ptr + dst * row, t.ptr + src * row, n * row, stream)
            out.ready = self._event(lane)
            out._buf.uses.append((lane, out.ready))
            t._buf.uses.append((lane, out.ready))
        return out

    def to_host(self, t: Any) -> np.ndarray:
        self._check_open()
        if not isinstance(t, DeviceTensor) or t.owner is not self:
            raise EdgeBranchyError("to_host needs a tensor of this backend")
        if t.batch == 0:
            return np.empty(t.shape, dtype=t.dtype)
        with self._current():
            ev, host = self._download(t)
            ev.synchronize()
            return self._read(t, host)

    def run_baseline(self, x: np.ndarray) -> np.ndarray:
        self._check_open()
        seg = self._baseline
        _, dtype, tail = seg.io[INPUT]
        if not isinstance(x, np.ndarray) or x.shape[1:] != tail or x.ndim != len(tail) + 1:
            raise EdgeBranchyError(f"baseline input must have shape (N, {', '.join(map(str, tail))})")
        self._check_batch(len(x), "baseline")
        with self._current():
            t = self._upload(x, dtype, 0)
            outs, _, _ = self._enqueue(seg, 0, t, None)
            return self.to_host(outs["logits"])

    def synchronize(self) -> None:
        if self._closed:
            return
        with self._current():
            for s in self._streams:
                s.synchronize()

    def describe(self) -> dict:
        rec = self.record
        out = {"backend": self.name, "tensorrt": self.facts["tensorrt"], "gpu": self.facts["gpu"],
               "compute_capability": self.facts["compute_capability"], "device_key": self.device_key,
               "precision": rec.get("precision"), "precision_mode": rec.get("precision_mode"),
               "dla_core": rec.get("dla_core"), "gpu_fallback": rec.get("gpu_fallback"),
               "max_batch": self.max_batch, "builder_optimization_level": rec.get("builder_optimization_level"),
               "lanes": self.lanes, "profile_sharing": rec.get("profile_sharing"), "cuda_binding": "pycuda", "timing": self.options["timing"]}
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
            for seg in self._segments + [self._baseline]:
                seg.contexts = []
            self._segments = []
            self._loaded.engines.clear()


class _Readback:
    """Owns the pinned buffer of one launch's entropy copy; returns it to the pool when done or dropped."""

    __slots__ = ("backend", "host", "__weakref__")

    def __init__(self, backend: TensorRTBackend, host: _Buffer):
        self.backend, self.host = backend, host
        weakref.finalize(self, backend._host_pool.give, host)

    def read(self, t: DeviceTensor) -> np.ndarray:
        return self.host.mem[:t.nbytes].view(t.dtype).reshape(t.shape).copy()
