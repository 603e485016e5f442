"""Pipelined streaming: one thread per segment, so segment k of batch i+1 overlaps
segment k+1 of batch i (ONNX Runtime and CUDA waits release the GIL).

Each stage applies the runner's own `decide`, so answers equal the sequential path.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.prediction import Answers

_STOP = object()


class _Failed:
    """An error of batch `bid` (the feeder's: of the batch it could not produce)."""

    def __init__(self, exc: BaseException, bid: int):
        self.exc = exc
        self.bid = bid


def run_pipeline(runner, batches: Iterable[np.ndarray], depth: int = 2) -> Iterator:
    """Yield runner predictions for `batches` in order, overlapping segments across batches."""
    pipe = _Pipeline(runner, depth)
    threads = [threading.Thread(target=pipe.feed, args=(batches,), daemon=True, name="eb-feed")]
    threads += [threading.Thread(target=pipe.stage, args=(k,), daemon=True, name=f"eb-seg{k}")
                for k in range(runner.num_exits)]
    for t in threads:
        t.start()
    try:
        yield from pipe.collect()
    finally:
        pipe.cancel.set()
        for t in threads:
            t.join(timeout=5)


class _Pipeline:
    """The queues between the feeder, one stage thread per segment and the consumer, and the cancel flags."""

    def __init__(self, runner, depth: int):
        self.runner, self.b = runner, runner.backend
        self.lanes = max(1, self.b.lanes)
        self.queues = [queue.Queue(maxsize=depth) for _ in range(runner.num_exits)]
        self.done_q: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.no_more = threading.Event()  # an error happened: feed no further batches, let the stream drain

    def put(self, q, item) -> bool:
        while not self.cancel.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q):
        while not self.cancel.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _STOP

    def feed(self, batches: Iterable[np.ndarray]) -> None:
        bid = 0
        try:
            for xb in batches:
                if self.no_more.is_set():
                    break
                xb = self.runner.artifact.check_input(xb)
                if len(xb) == 0:
                    raise EdgeBranchyError(f"empty batch (batch {bid} of the stream)")
                out = Answers(len(xb), False)
                if not self.put(self.queues[0], (bid, out, np.arange(len(xb)), self.b.to_device(xb))):
                    return
                bid += 1
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self.done_q.put(_Failed(e, bid))
        self.put(self.queues[0], _STOP)

    def stage(self, k: int) -> None:
        # a backend with a lane per stage (tensorrt: compat.lanes_for) gives every stage a stream of its own;
        # uploads (to_device, on the feeder thread) are the backend's: tensorrt has a copy stream for them
        b, lane, last = self.b, k % self.lanes, k + 1 == len(self.queues)
        while True:
            item = self.get(self.queues[k])
            if item is _STOP or self.cancel.is_set():
                if last:
                    self.done_q.put(_STOP)
                else:
                    self.put(self.queues[k + 1], _STOP)
                return
            bid, out, rows, x = item
            try:
                launch = b.launch(k, x, lane)
                keep = self.runner.decide(launch, np.arange(launch.batch), rows, out)
                if keep is None:
                    self.done_q.put((bid, out))
                else:
                    feats = launch.features if len(keep) == launch.batch else b.gather(launch.features, keep, lane)
                    self.put(self.queues[k + 1], (bid, out, rows[keep], feats))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                self.done_q.put(_Failed(e, bid))

    def collect(self) -> Iterator:
        """The finished batches in order. After an error, the batches before the failed one are still in flight:
        keep collecting until the stream drains, yield them in order, then raise."""
        pending: dict[int, object] = {}
        nxt = 0
        failed: _Failed | None = None  # the earliest batch's error
        while True:
            item = self.done_q.get()
            if item is _STOP:
                break
            if isinstance(item, _Failed):
                self.no_more.set()
                if failed is None or item.bid < failed.bid:
                    failed = item
                continue
            bid, out = item
            pending[bid] = out
            while nxt in pending and (failed is None or nxt < failed.bid):
                yield pending.pop(nxt).prediction()
                nxt += 1
        while nxt in pending and (failed is None or nxt < failed.bid):
            yield pending.pop(nxt).prediction()
            nxt += 1
        if failed is not None:
            raise failed.exc
