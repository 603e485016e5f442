"""Independent batches on worker threads: each worker runs the whole early-exit loop (`runner.predict`) on a batch
of its own, so every core computes and no stage waits for another (the pipeline's segments are unequal; a batch
is not). ONNX Runtime and torch release the GIL while they compute; answers are yielded in order and equal the
sequential path's.

As in the pipeline: after an error, the batches before the failed one are still yielded in order, then the
error is raised; batches already queued behind it are cancelled or finish unseen, no further batch is taken.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np

from edgebranchy.errors import EdgeBranchyError


def run_concurrent(runner, batches: Iterable[np.ndarray], workers: int, depth: int = 2) -> Iterator:
    """Yield runner predictions for `batches` in order, `workers` batches at a time (`depth` per worker queued)."""
    ahead = max(1, workers) * max(1, depth)
    pending: list[Future] = []
    source_error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="eb-batch")
    try:
        it = iter(batches)
        bid = 0
        while True:
            while source_error is None and len(pending) < ahead:
                try:
                    xb = next(it)
                except StopIteration:
                    break
                except BaseException as e:  # noqa: BLE001 - the source's error, raised after the batches before it
                    source_error = e
                    break
                pending.append(pool.submit(_one, runner, xb, bid))
                bid += 1
            if not pending:
                break
            yield pending.pop(0).result()  # the earliest batch's error is raised here, in order
        if source_error is not None:
            raise source_error
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)


def _one(runner, xb: np.ndarray, bid: int):
    try:
        return runner.predict(xb)
    except EdgeBranchyError as e:
        raise EdgeBranchyError(f"{e} (batch {bid} of the stream)") from None
