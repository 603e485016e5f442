"""Device memory for the TensorRT backend: pooled buffers, CUDA events, device tensors, read-backs (pycuda).

Device and pinned host buffers are allocated at the engines' maximum batch and recycled through pools, so
steady-state inference allocates nothing. A buffer goes back to its pool when the last tensor using it is
dropped; the next user first waits (on the GPU) for the events of every op that touched it.

pycuda objects are freed only with their context current (cuda.hpp `context_dependent`): events live for the
backend's whole life, and `close()` frees every buffer on the closing thread, never the garbage collector on a
pipeline thread. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, List, Tuple

import numpy as np


class Buffer:
    """One allocation (device or pinned host) and the (lane, event) of every op that touched it since
    it was last handed out."""

    __slots__ = ("mem", "ptr", "nbytes", "uses")

    def __init__(self, mem: Any, ptr: int, nbytes: int):
        self.mem, self.ptr, self.nbytes = mem, ptr, nbytes
        self.uses: List[Tuple[int, Any]] = []


class Events:
    """CUDA events owned by the backend for its whole life, recorded again in turn (a ring per lane and kind).

    Re-recording an event on the same lane only moves it later on that stream, so a waiter waits at most longer,
    never too little. Events only streams wait on are created with DISABLE_TIMING (cheaper); timing ones only
    when timing is on; events the host waits on carry BLOCKING_SYNC when `blocking` (the waiting thread sleeps
    instead of spinning a core: `host_wait = "block"`). All are released in `close()`, with the context current.
    """

    def __init__(self, cuda: Any, blocking: bool, size: int = 512):
        self._cuda, self._blocking, self._size = cuda, blocking, size
        self._rings: Dict[Tuple[int, bool, bool], List[Any]] = {}
        self._next: Dict[Tuple[int, bool, bool], int] = {}
        self._lock = threading.Lock()

    def get(self, lane: int, timing: bool, host: bool) -> Any:
        key = (lane, timing, host and self._blocking)
        with self._lock:
            ring = self._rings.setdefault(key, [])
            if len(ring) < self._size:
                flags = 0 if timing else self._cuda.event_flags.DISABLE_TIMING
                if key[2]:
                    flags |= self._cuda.event_flags.BLOCKING_SYNC
                ev = self._cuda.Event(flags)
                ring.append(ev)
                return ev
            i = self._next.get(key, 0)
            self._next[key] = (i + 1) % self._size
            return ring[i]

    def close(self) -> None:
        with self._lock:
            self._rings, self._next = {}, {}


class Pool:
    """Recycles buffers by size, least recently returned first (an upload does not re-take the buffer whose
    copy is still in flight). Device buffers wait for earlier users on the GPU; a host buffer is taken only once
    every copy that used it is done (the pool grows by one instead): taking never makes the host wait."""

    def __init__(self, alloc, streams: list, host: bool):
        self._alloc, self._streams, self._host = alloc, streams, host
        self._free: Dict[int, List[Buffer]] = {}
        self._all: List[Buffer] = []
        self._lock = threading.Lock()
        self.closed = False

    def take(self, nbytes: int, lane: int) -> Buffer:
        with self._lock:
            free = self._free.get(nbytes) or []
            i = next((i for i, b in enumerate(free) if not self._host or all(e.query() for _, e in b.uses)), None)
            buf = free.pop(i) if i is not None else None
        if buf is None:
            buf = self._alloc(nbytes)
            with self._lock:
                self._all.append(buf)
            return buf
        for used_on, event in buf.uses:
            if not self._host and used_on != lane:
                self._streams[lane].wait_for_event(event)
        buf.uses = []
        return buf

    def give(self, buf: Buffer) -> None:
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
    """A tensor in GPU memory: a pooled allocation, dtype, shape, the lane (stream) that writes it, the event
    recorded when it is ready and, for a launch's logits, the read-back that already copies it to the host."""

    __slots__ = ("_buf", "dtype", "shape", "lane", "ready", "owner", "readback", "__weakref__")

    def __init__(self, buf: Buffer, dtype: np.dtype, shape: tuple, lane: int, owner: Any):
        self._buf, self.dtype, self.shape, self.lane, self.owner = buf, np.dtype(dtype), tuple(shape), lane, owner
        self.ready: Any = None
        self.readback: Any = None
        weakref.finalize(self, owner._device_pool.give, buf)

    @property
    def ptr(self) -> int:
        return self._buf.ptr

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.batch

    def __repr__(self) -> str:
        return f"DeviceTensor(shape={self.shape}, dtype={self.dtype}, lane={self.lane}, ptr=0x{self.ptr:x})"


class Readback:
    """One launch's entropy and logits, copied to pinned memory together behind one event: the host waits once
    per exit, then reads both. The pinned buffers go back to the pool when the read-back is dropped."""

    __slots__ = ("event", "hosts", "tensors", "waited", "__weakref__")

    def __init__(self, pool: Pool, event: Any, hosts: List[Buffer], tensors: List[DeviceTensor]):
        self.event, self.hosts, self.waited = event, hosts, False
        self.tensors = [(t.dtype, t.shape, t.nbytes) for t in tensors]
        for h in hosts:
            weakref.finalize(self, pool.give, h)

    def wait(self) -> None:
        if not self.waited:
            self.event.synchronize()
            self.waited = True

    def read(self, i: int) -> np.ndarray:
        """Tensor i's host copy (after `wait`)."""
        dtype, shape, nbytes = self.tensors[i]
        return self.hosts[i].mem[:nbytes].view(dtype).reshape(shape).copy()
