"""The runner under bad input and faults: thresholds, empty batches, errors in the middle of a stream."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.runner import EarlyExitRunner


@pytest.fixture(scope="module")
def runner(tiny_artifact):
    with EarlyExitRunner(tiny_artifact) as r:
        yield r


@pytest.mark.parametrize("ts", [["a"], [None], [-1.0], [True], [False], [float("nan")], [float("inf")], "0.5",
                                [np.bool_(True)], [[0.1]]])
def test_api_thresholds_refused(tiny_artifact, ts):
    with pytest.raises(EdgeBranchyError, match="threshold"):
        EarlyExitRunner(tiny_artifact, thresholds=ts)


def test_api_thresholds_accepted(tiny_artifact):
    with EarlyExitRunner(tiny_artifact, thresholds=[np.float32(0.25)]) as r:
        assert r.thresholds == [0.25]
    with EarlyExitRunner(tiny_artifact, thresholds=[0]) as r:
        assert r.thresholds == [0.0]


def _batches(synthetic_test, sizes):
    _, x, _ = synthetic_test
    out, i = [], 0
    for n in sizes:
        out.append(x[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("mode", ["sequential", "pipelined", "concurrent"])
def test_stream_yields_finished_batches_before_a_bad_batch(runner, synthetic_test, mode):
    good = _batches(synthetic_test, [4, 5, 6])
    bad = good[0].astype(np.float64)  # wrong dtype: refused by check_input
    got = []
    with pytest.raises(EdgeBranchyError, match="float32"):
        for p in runner.predict_stream(good + [bad] + good, mode=mode, workers=2):
            got.append(p)
    assert [len(p) for p in got] == [4, 5, 6]
    for p, xb in zip(got, good):
        assert (p.labels == runner.predict(xb).labels).all()


@pytest.mark.parametrize("mode", ["sequential", "pipelined", "concurrent"])
def test_stream_yields_finished_batches_before_the_generator_fails(runner, synthetic_test, mode):
    good = _batches(synthetic_test, [3, 2])

    def gen():
        yield from good
        raise RuntimeError("source broke")

    got = []
    with pytest.raises(RuntimeError, match="source broke"):
        for p in runner.predict_stream(gen(), mode=mode, workers=2):
            got.append(p)
    assert [len(p) for p in got] == [3, 2]


@pytest.mark.parametrize("mode", ["pipelined", "concurrent"])
def test_stream_yields_batches_before_a_failing_segment(tiny_artifact, synthetic_test, mode):
    """A launch that fails for one batch (injected): every earlier batch is still yielded, in order."""
    with EarlyExitRunner(tiny_artifact, thresholds=[0.0]) as r:  # every sample goes through both segments
        real = r.backend.launch

        def launch(k, x, lane=0):
            if k == 1 and len(x) == 7:
                raise RuntimeError("device fault")
            return real(k, x, lane)

        r.backend.launch = launch
        batches = _batches(synthetic_test, [4, 5, 6, 7, 4, 5])
        got = []
        with pytest.raises(RuntimeError, match="device fault"):
            for p in r.predict_stream(batches, mode=mode, workers=2):
                got.append(p)
        assert [len(p) for p in got] == [4, 5, 6]


@pytest.mark.parametrize("mode", ["sequential", "pipelined", "concurrent"])
def test_empty_batch_is_a_user_error(runner, synthetic_test, mode):
    _, x, _ = synthetic_test
    with pytest.raises(EdgeBranchyError, match="empty"):
        list(runner.predict_stream([x[:2], x[:0]], mode=mode, workers=2))
