"""Batch-1 ONNX Runtime calls through IOBinding: input and output buffers allocated and bound once.

A plain `run` allocates a new numpy array for every output of every call; at batch 1 that is a large
part of a small segment's cost. Bound once, a call only copies the sample into the input buffer and
runs; segment k+1's input is bound to segment k's features buffer, so the features never move.
(benchmarks/call_profile.py: B-LeNet segment 0 41.3 -> 36.9 µs per call through `step_one`, recorded in
benchmarks/results/call_profile.md.)

The buffers are overwritten by the next call: whoever keeps an output copies it. The backend holds
one set of bindings per thread, so concurrent batch-1 calls never share a buffer. Each set is checked
once when it is bound: a test pattern through the bound calls must give exactly what plain runs give,
or the backend keeps to plain runs.
"""
from __future__ import annotations

import numpy as np

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
           "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def batch1_shape(node_arg) -> tuple[int, ...] | None:
    """The tensor's shape at batch 1, or None when a dimension other than the batch axis is not known."""
    dims = list(node_arg.shape)
    if not dims:
        return None
    out = [1]
    for d in dims[1:]:
        if not isinstance(d, int) or d <= 0:
            return None
        out.append(d)
    return tuple(out)


def _buffer(node_arg) -> np.ndarray | None:
    shape, dtype = batch1_shape(node_arg), _DTYPES.get(node_arg.type)
    return None if shape is None or dtype is None else np.zeros(shape, dtype=dtype)


class BoundCall:
    """One session bound at batch 1: `inp` (the input buffer), `outs` (output buffers in `names` order), `run()`."""

    __slots__ = ("inp", "outs", "run", "_keep")

    def __init__(self, ort, sess, names: list[str], inp: np.ndarray):
        io = sess.io_binding()
        (arg,) = sess.get_inputs()
        io.bind_cpu_input(arg.name, inp)
        outs = []
        for name in names:
            (o,) = [o for o in sess.get_outputs() if o.name == name]
            buf = _buffer(o)
            if buf is None:
                raise ValueError(f"output {name} has no known batch-1 shape")
            io.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
            outs.append(buf)
        opts = ort.RunOptions()
        self.inp, self.outs = inp, outs
        self.run = _runner(sess, io, opts)
        self._keep = io  # the binding object owns what the call points to

    def feed(self, x: np.ndarray) -> bool:
        """Copy x into the input buffer (nothing to do when x is that buffer); False when x does not fit it."""
        if x is self.inp:
            return True
        if x.shape != self.inp.shape or x.dtype != self.inp.dtype:
            return False
        np.copyto(self.inp, x)
        return True


def _runner(sess, io, opts):
    """The bound call. Private attributes kept: the public run_with_iobinding costs 58 µs a call against 24 µs
    here (its WebGPU capture checks; benchmarks/results/call_profile_iobinding.md); the public one where absent."""
    inner, binding = getattr(sess, "_sess", None), getattr(io, "_iobinding", None)
    if callable(getattr(inner, "run_with_iobinding", None)) and binding is not None:
        return lambda: inner.run_with_iobinding(binding, opts)
    return lambda: sess.run_with_iobinding(io, opts)


def _agrees(calls: list[BoundCall], sessions, outputs: list[list[str]]) -> bool:
    """Run the bound calls once on a test pattern and compare every output with a plain run on the same
    input: a binding that copied its input when bound (not its memory) or wrote elsewhere is refused."""
    first = calls[0].inp
    if first.dtype.kind != "f":
        return False
    first[...] = np.linspace(-1.0, 1.0, first.size, dtype=np.float32).reshape(first.shape)
    for call, sess, names in zip(calls, sessions, outputs):
        fed = call.inp.copy()
        for o in call.outs:  # a sentinel, so that outputs left from an earlier run cannot pass
            o[...] = np.nan if o.dtype.kind == "f" else (True if o.dtype.kind == "b" else np.iinfo(o.dtype).min)
        call.run()
        plain = sess.run(names, {sess.get_inputs()[0].name: fed})
        if not all(np.array_equal(b, p, equal_nan=True) for b, p in zip(call.outs, plain)):
            return False
    return True


def bind_one(ort, sess, names: list[str]) -> BoundCall | None:
    """A session with one input bound at batch 1 (its own input buffer), or None where it cannot be."""
    if not callable(getattr(sess, "io_binding", None)):
        return None
    ins = sess.get_inputs()
    buf = _buffer(ins[0]) if len(ins) == 1 else None
    if buf is None:
        return None
    try:
        call = BoundCall(ort, sess, names, buf)
    except ValueError:
        return None
    return call if _agrees([call], [sess], [names]) else None


def bind_chain(ort, sessions, outputs: list[list[str]], feature_index: list) -> list[BoundCall] | None:
    """Every segment bound at batch 1, segment k+1's input bound to segment k's features buffer; None when
    any segment cannot be bound (a shape only known at run time, several tensors crossing a split)."""
    chain: list[BoundCall] = []
    for k, (sess, names) in enumerate(zip(sessions, outputs)):
        if k == 0:
            call = bind_one(ort, sess, names)
        else:
            fi = feature_index[k - 1]
            ins = sess.get_inputs()
            if isinstance(fi, tuple) or len(ins) != 1:
                return None
            prev = chain[-1].outs[fi]
            want = _buffer(ins[0])
            if want is None or want.shape != prev.shape or want.dtype != prev.dtype:
                return None
            try:
                call = BoundCall(ort, sess, names, prev)
            except ValueError:
                return None
        if call is None:
            return None
        chain.append(call)
    return chain if _agrees(chain, sessions, outputs) else None
