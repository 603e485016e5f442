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
    K = runner.num_exits
    b = runner.backend
    lanes = max(1, b.lanes)
    queues = [queue.Queue(maxsize=depth) for _ in range(K)]
    done_q: queue.Queue = queue.Queue()
    cancel = threading.Event()
    no_more = threading.Event()  # an error happened: feed no further batches, let the stream drain

    def put(q, item) -> bool:
        while not cancel.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def feeder():
        bid = 0
        try:
            for xb in batches:
                if no_more.is_set():
                    break
                xb = runner.artifact.check_input(xb)
                if len(xb) == 0:
                    raise EdgeBranchyError(f"empty batch (batch {bid} of the stream)")
                out = Answers(len(xb), False)
                if not put(queues[0], (bid, out, np.arange(len(xb)), b.to_device(xb))):
                    return
                bid += 1
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            done_q.put(_Failed(e, bid))
        put(queues[0], _STOP)

    def get(q):
        while not cancel.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _STOP

    def stage(k: int):
        # a backend with a lane per stage (tensorrt: compat.lanes_for) gives every stage a stream of its own;
        # uploads (to_device, on the feeder thread) are the backend's: tensorrt has a copy stream for them
        lane = k % lanes
        while True:
            item = get(queues[k])
            if item is _STOP or cancel.is_set():
                if k + 1 < K:
                    put(queues[k + 1], _STOP)
                else:
                    done_q.put(_STOP)
                return
            bid, out, rows, x = item
            try:
                launch = b.launch(k, x, lane)
                keep = runner.decide(launch, np.arange(launch.batch), rows, out)
                if keep is None:
                    done_q.put((bid, out))
                else:
                    feats = launch.features if len(keep) == launch.batch else b.gather(launch.features, keep, lane)
                    put(queues[k + 1], (bid, out, rows[keep], feats))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                done_q.put(_Failed(e, bid))

    threads = [threading.Thread(target=feeder, daemon=True, name="eb-feed")]
    threads += [threading.Thread(target=stage, args=(k,), daemon=True, name=f"eb-seg{k}") for k in range(K)]
    for t in threads:
        t.start()
    pending: dict[int, object] = {}
    nxt = 0
    failed: _Failed | None = None  # the earliest batch's error
    try:
        # After an error, the batches before the failed one are still in flight: keep collecting
        # until the stream drains, yield them in order, then raise.
        while True:
            item = done_q.get()
            if item is _STOP:
                break
            if isinstance(item, _Failed):
                no_more.set()
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
    finally:
        cancel.set()
        for t in threads:
            t.join(timeout=5)
