"""A strict pycuda double: host memory stands in for device memory, streams queue their work.

- `mem_alloc` returns an allocation with an int address from a registry; every
  device pointer is resolved against it (bounds and use-after-free are errors).
- Work on a stream (copies, engine runs, event records, waits) is queued and runs
  only when something waits for it (`Stream.synchronize`, `Event.synchronize`, or
  a stream waiting on an event that must run first). A missing cross-stream wait
  or a host read before its copy completed therefore gives wrong data.
- Async copies need page-locked host memory, a non-default stream and a current
  context; `pycuda.autoinit` may not be imported; `pycuda.autoprimaryctx`
  makes the primary context current in the importing thread only.
"""
from __future__ import annotations

import bisect
import threading
import time
import types

import numpy as np

from trt_double import state as st

BASE_ADDRESS = 0x7F00_0000_0000


class LogicError(RuntimeError):
    """pycuda's error for calls without a current context."""


def _need_context(what: str) -> st.State:
    s = st.current()
    if not s.ctx_stack():
        s.fail(f"{what}: no current CUDA context in this thread (push the primary context first)", LogicError)
    return s


# ---------------------------------------------------------------- memory

class DeviceAllocation:
    def __init__(self, nbytes: int, address: int):
        self._buf = np.zeros(max(int(nbytes), 1), dtype=np.uint8)
        self._nbytes = int(nbytes)
        self._address = address
        self._freed = False
        self._eb_state = st.current()
        self._eb_ctx = _creation_context()

    def __int__(self):
        return self._address

    __index__ = __int__

    def free(self):
        if not self._freed:
            self._freed = True
            _memory().release(self)

    def __del__(self):
        if not getattr(self, "_freed", True):
            _collected(self, "DeviceAllocation")


class _Memory:
    def __init__(self):
        self.starts: list = []
        self.allocs: list = []
        self.next = BASE_ADDRESS

    def alloc(self, nbytes: int) -> DeviceAllocation:
        with st.current().lock:
            a = DeviceAllocation(nbytes, self.next)
            self.next += (max(int(nbytes), 1) + 511) // 256 * 256  # gap between allocations: overruns are caught
            i = bisect.bisect(self.starts, a._address)
            self.starts.insert(i, a._address)
            self.allocs.insert(i, a)
        return a

    def release(self, a: DeviceAllocation) -> None:
        with st.current().lock:
            i = self.starts.index(a._address)
            del self.starts[i], self.allocs[i]

    def view(self, ptr, nbytes: int, what: str) -> np.ndarray:
        """The bytes [ptr, ptr + nbytes) of one live allocation."""
        s = st.current()
        p = int(ptr)
        with s.lock:
            i = bisect.bisect(self.starts, p) - 1
            a = self.allocs[i] if i >= 0 else None
        if a is None:
            s.fail(f"{what}: address 0x{p:x} is not device memory")
        off = p - a._address
        if a._freed or off + nbytes > a._nbytes or off < 0:
            s.fail(f"{what}: [0x{p:x}, +{nbytes}) is outside allocation 0x{a._address:x} of {a._nbytes} bytes"
                   + (" (freed)" if a._freed else ""))
        return a._buf[off:off + nbytes]


def _memory() -> _Memory:
    s = st.current()
    with s.lock:
        if not hasattr(s, "_memory"):
            s._memory = _Memory()
    return s._memory


def _pinned() -> dict:
    s = st.current()
    with s.lock:
        if not hasattr(s, "_pinned"):
            s._pinned = {}
    return s._pinned


def mem_alloc(nbytes):
    _need_context("mem_alloc")
    if int(nbytes) <= 0:
        st.current().fail(f"mem_alloc({nbytes}): size must be positive")
    return _memory().alloc(int(nbytes))


class HostAllocation(np.ndarray):
    """pycuda's page-locked allocation: the `.base` of the array `pagelocked_empty` returns (PC:
    `pagelocked_host_allocation`); freed by `free()` or when collected, which needs its context current
    on the collecting thread (else pycuda warns "could not be cleaned up" and leaks it)."""

    def free(self):
        if not getattr(self, "_eb_freed", False):
            self._eb_freed = True
            _pinned().pop(id(self), None)

    def __del__(self):
        if not getattr(self, "_eb_freed", True):
            _collected(self, "HostAllocation")


def _collected(obj, kind: str) -> None:
    """An unfreed pycuda object collected. pycuda frees it inside `scoped_context_activation` (cuda.hpp:959-996,
    e.g. the event destructor at 2134-2140): fine where its context is current, or on the thread that created that
    context (pushed and popped for the call); elsewhere it warns "<type> in out-of-thread context could not be
    cleaned up" and leaks it (`CUDAPP_CATCH_CLEANUP_ON_DEAD_CONTEXT`)."""
    s = getattr(obj, "_eb_state", None)
    if s is None or not st._CURRENT or st._CURRENT[-1] is not s:
        return  # made under another (uninstalled) double: nothing to check any more
    ctx = getattr(obj, "_eb_ctx", None)
    stack = s.ctx_stack()
    if stack and (ctx is None or stack[-1] is ctx):
        return
    if ctx is not None and ctx._thread == threading.get_ident():
        return
    msg = f"{kind} in out-of-thread context could not be cleaned up (collected on a thread without the context)"
    s.leaks.append(msg)
    s.violations.append(msg)


def _creation_context():
    stack = st.current().ctx_stack()
    return stack[-1] if stack else None


def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
    _need_context("pagelocked_empty")
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    host = HostAllocation(shape=(max(n, 1),), dtype=np.uint8)
    host[:] = 0
    host._eb_freed = False
    host._eb_state = st.current()
    host._eb_ctx = _creation_context()
    _pinned()[id(host)] = host
    return np.ndarray(shape, dtype, buffer=host, order=order)


def _check_pinned(a, what: str) -> np.ndarray:
    s = st.current()
    if not isinstance(a, np.ndarray):
        s.fail(f"{what}: host side must be a numpy array, got {type(a).__name__}")
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if _pinned().get(id(root)) is not root or getattr(root, "_eb_freed", False):
        s.fail(f"{what}: host memory is not page-locked (use pagelocked_empty): the copy would not be async")
    if not a.flags.c_contiguous:
        s.fail(f"{what}: host array is not contiguous")
    return a


# ---------------------------------------------------------------- streams and events

class _Op:
    __slots__ = ("kind", "fn", "done", "stream")

    def __init__(self, kind, fn, stream):
        self.kind, self.fn, self.done, self.stream = kind, fn, False, stream


class Stream:
    def __init__(self, flags=0):
        s = _need_context("Stream()")
        with s.lock:
            n = getattr(s, "_nstreams", 0) + 1
            s._nstreams = n
            self._handle = 0x5000 + n
            self._pending = []
            if not hasattr(s, "_streams"):
                s._streams = {}
            s._streams[self._handle] = self

    @property
    def handle(self):
        return self._handle

    def _enqueue(self, kind, fn, info=None) -> _Op:
        s = st.current()
        op = _Op(kind, fn, self)
        with s.lock:
            self._pending.append(op)
            s.ops.append((kind, self._handle, info))
        return op

    def _run_until(self, op) -> None:
        s = st.current()
        with s.lock:
            while not op.done:
                nxt = self._pending.pop(0)
                nxt.fn()
                nxt.done = True

    def synchronize(self):
        s = st.current()
        _host_wait(s, self._handle, {"stream": self._handle, "blocking": False})
        with s.lock:
            while self._pending:
                self._run_until(self._pending[0])

    def is_done(self):
        return not self._pending

    def wait_for_event(self, event):
        target = event._op
        st.current()

        def wait():
            if target is not None and not target.done:
                target.stream._run_until(target)

        self._enqueue("wait", wait, {"event": id(event), "on": None if target is None else target.stream._handle})


def _host_wait(s: st.State, handle: int, info: dict) -> None:
    """Log a host wait (Stream/Event.synchronize) in the op log: tests count the host round trips."""
    with s.lock:
        s.ops.append(("host-wait", handle, info))


def _stream(stream, what: str) -> Stream:
    s = st.current()
    if stream is None or not isinstance(stream, Stream):
        s.fail(f"{what}: needs a non-default cuda.Stream (got {stream!r})")
    return stream


def stream_for_handle(handle) -> Stream:
    s = st.current()
    if int(handle) == 0:
        s.fail("execute_async_v3 on the default stream (handle 0): use a cuda.Stream()")
    found = getattr(s, "_streams", {}).get(int(handle))
    if found is None:
        s.fail(f"execute_async_v3: {handle!r} is not the handle of a live stream")
    return found


class event_flags:  # noqa: N801 - pycuda's spelling
    DEFAULT = 0
    BLOCKING_SYNC = 1
    DISABLE_TIMING = 2


class Event:
    def __init__(self, flags=0):
        self._eb_state = _need_context("Event()")
        self._eb_ctx = _creation_context()
        self._op = None
        self._time = None
        self._timing = not (int(flags) & event_flags.DISABLE_TIMING)
        self._blocking = bool(int(flags) & event_flags.BLOCKING_SYNC)  # the waiting host thread sleeps, not spins

    def __del__(self):
        _collected(self, "Event")

    def record(self, stream=None):
        stream = _stream(stream, "Event.record")

        def mark():
            self._time = time.perf_counter()

        self._time = None
        self._op = stream._enqueue("record", mark, {"event": id(self)})
        return self

    def synchronize(self):
        if self._op is not None:
            _host_wait(st.current(), self._op.stream._handle, {"event": id(self), "blocking": self._blocking})
        if self._op is not None and not self._op.done:
            self._op.stream._run_until(self._op)
        return self

    def query(self):
        return self._op is None or self._op.done

    def time_till(self, other):
        s = st.current()
        if not (self._timing and other._timing):
            s.fail("Event.time_till: an event created with DISABLE_TIMING cannot time (invalid handle)", LogicError)
        if self._time is None or other._time is None:
            s.fail("Event.time_till: both events must have completed (cuEventElapsedTime: not ready)", LogicError)
        return (other._time - self._time) * 1e3

    def time_since(self, other):
        return other.time_till(self)


# ---------------------------------------------------------------- copies

def memcpy_htod_async(dest, src, stream=None):
    stream = _stream(stream, "memcpy_htod_async")
    _need_context("memcpy_htod_async")
    src = _check_pinned(src, "memcpy_htod_async")
    n = src.nbytes
    _memory().view(dest, n, "memcpy_htod_async")

    def run():
        _memory().view(dest, n, "memcpy_htod_async")[:] = src.reshape(-1).view(np.uint8)

    stream._enqueue("htod", run, {"dest": int(dest), "bytes": n})


def memcpy_dtoh_async(dest, src, stream=None):
    stream = _stream(stream, "memcpy_dtoh_async")
    _need_context("memcpy_dtoh_async")
    dest = _check_pinned(dest, "memcpy_dtoh_async")
    n = dest.nbytes
    _memory().view(src, n, "memcpy_dtoh_async")

    def run():
        dest.reshape(-1).view(np.uint8)[:] = _memory().view(src, n, "memcpy_dtoh_async")

    stream._enqueue("dtoh", run, {"src": int(src), "bytes": n})


def memcpy_dtod_async(dest, src, size, stream=None):
    stream = _stream(stream, "memcpy_dtod_async")
    _need_context("memcpy_dtod_async")
    n = int(size)
    _memory().view(dest, n, "memcpy_dtod_async (dest)")
    _memory().view(src, n, "memcpy_dtod_async (src)")

    def run():
        data = _memory().view(src, n, "memcpy_dtod_async (src)").copy()
        _memory().view(dest, n, "memcpy_dtod_async (dest)")[:] = data

    stream._enqueue("dtod", run, {"dest": int(dest), "src": int(src), "bytes": n})


# ---------------------------------------------------------------- devices and contexts

class Context:
    def __init__(self, device):
        self._device = device
        self._thread = threading.get_ident()  # pycuda `context::m_thread`: the thread that made the object

    def push(self):
        st.current().ctx_stack().append(self)

    @staticmethod
    def pop():
        s = st.current()
        stack = s.ctx_stack()
        if not stack:
            s.fail("Context.pop(): no context on this thread's stack", LogicError)
        stack.pop()

    @staticmethod
    def get_current():
        stack = st.current().ctx_stack()
        return stack[-1] if stack else None

    def get_device(self):
        return self._device

    def synchronize(self):
        for stream in list(getattr(st.current(), "_streams", {}).values()):
            stream.synchronize()


class Device:
    def __init__(self, ordinal):
        s = st.current()
        if not getattr(s, "_initialised", False):
            s.fail("cuda.Device() before cuda.init()", LogicError)
        if int(ordinal) != 0:
            s.fail(f"cuda.Device({ordinal}): the double has one device", LogicError)
        self._ordinal = int(ordinal)

    @staticmethod
    def count():
        return 1

    def name(self):
        return st.current().gpu

    def compute_capability(self):
        return tuple(st.current().cc)

    def pci_bus_id(self):
        return st.current().pci_bus_id

    def get_attribute(self, attr):
        if attr is not device_attribute.MULTIPROCESSOR_COUNT:
            st.current().fail(f"Device.get_attribute({attr!r}): the double knows MULTIPROCESSOR_COUNT only")
        return st.current().sm_count

    def retain_primary_context(self):
        s = st.current()
        if not hasattr(s, "_primary"):
            s._primary = Context(self)
        return s._primary


class device_attribute:  # noqa: N801 - pycuda's spelling
    MULTIPROCESSOR_COUNT = object()


def init(flags=0):
    st.current()._initialised = True


def make_driver_module() -> types.ModuleType:
    m = types.ModuleType("pycuda.driver")
    for name in ("LogicError", "DeviceAllocation", "mem_alloc", "pagelocked_empty", "Stream", "Event",
                 "memcpy_htod_async", "memcpy_dtoh_async", "memcpy_dtod_async", "Context", "Device", "init",
                 "device_attribute", "event_flags", "HostAllocation"):
        setattr(m, name, globals()[name])
    return m


def exec_autoprimaryctx(module: types.ModuleType) -> None:
    """What importing pycuda.autoprimaryctx does (pycuda/autoprimaryctx.py): init, retain device 0's primary
    context and push it on the importing thread, for good (its atexit hook pops it on the main thread only);
    the module exposes `device` and `context`."""
    init()
    module.device = Device(0)
    module.context = module.device.retain_primary_context()
    module.context.push()
    dev = Device(0)
    ctx = dev.retain_primary_context()
    ctx.push()
    module.context = ctx
    module.device = dev


def exec_autoinit(module: types.ModuleType) -> None:
    st.current().fail("pycuda.autoinit imported: it creates a private context (invalid resource handle with "
                      "TensorRT); import pycuda.autoprimaryctx", ImportError)


