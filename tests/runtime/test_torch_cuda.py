"""The torch backend on CUDA: streams, events, device compaction and speculation (needs a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.runtime.runner import EarlyExitRunner

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda_runner(tiny_artifact):
    with EarlyExitRunner(tiny_artifact, backend="torch", options={"device": "cuda"}, speculate=False) as r:
        yield r


@pytest.fixture(scope="module")
def reference(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact, backend="torch", options={"device": "cpu"}) as r:
        return x[:128], [r.predict(x[i:i + 1]) for i in range(128)]


def _same(p, refs):
    assert [int(e) for e in p.exits] == [int(r.exits[0]) for r in refs]
    assert [int(l) for l in p.labels] == [int(r.labels[0]) for r in refs]


def test_compaction_on_device_equals_one_at_a_time(cuda_runner, reference):
    x, refs = reference
    _same(cuda_runner.predict(x), refs)


def test_speculation_equals_sequential(tiny_artifact, reference):
    x, refs = reference
    with EarlyExitRunner(tiny_artifact, backend="torch", options={"device": "cuda"}, speculate=True) as r:
        assert r.speculate
        for i in range(len(x)):
            p = r.predict(x[i:i + 1])
            assert (int(p.exits[0]), int(p.labels[0])) == (int(refs[i].exits[0]), int(refs[i].labels[0]))
        _same(r.predict(x), refs)  # speculation on a whole batch too


def test_stream_pipelining_equals_sequential(cuda_runner, reference):
    x, refs = reference
    batches = [x[i:i + 16] for i in range(0, len(x), 16)]
    preds = list(cuda_runner.predict_stream(batches, pipelined=True))
    _same(type(preds[0])(np.concatenate([p.labels for p in preds]), np.concatenate([p.exits for p in preds]),
                         np.concatenate([p.entropy for p in preds])), refs)


def test_features_never_reach_the_host(cuda_runner, reference, monkeypatch):
    x, _ = reference
    b = cuda_runner.backend
    copied = []
    real = b.to_host

    def spy(t):
        copied.append(tuple(t.t.shape))
        return real(t)

    monkeypatch.setattr(b, "to_host", spy)
    cuda_runner.predict(x)
    classes = len(cuda_runner.artifact.classes)
    assert copied and all(len(s) == 2 and s[1] == classes for s in copied), copied  # logits rows only
    launch = b.launch(0, b.to_device(x), 0)
    assert launch.features.t.is_cuda and launch.logits.t.is_cuda


def test_event_timing(tiny_artifact, reference):
    x, _ = reference
    with EarlyExitRunner(tiny_artifact, backend="torch", options={"device": "cuda", "timing": True}) as r:
        b = r.backend
        launch = b.launch(0, b.to_device(x[:8]), 0)
        assert launch.timing == {}  # measured once the launch is waited for
        launch.entropy()
        assert isinstance(launch.timing["gpu_ms"], float) and launch.timing["gpu_ms"] > 0  # as on tensorrt
