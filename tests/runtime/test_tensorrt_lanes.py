"""TensorRTBackend streams, read-backs, CUDA contexts and host waits against the strict double (issue 23
items 5, 6, 8 and 9): each pipeline stage on its own stream and uploads on a copy stream; one host round trip
per exit; no CUDA context left on a thread's stack; BLOCKING_SYNC read-back events when asked, and recorded."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from trt_double import assert_clean, install

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.tensorrt import TensorRTBackend
from edgebranchy.runtime.runner import EarlyExitRunner
from edgebranchy.tensorrt import compat
from edgebranchy.tensorrt.build import build_engines

GPU = ("Orin (nvgpu)", (8, 7))
SETTINGS = {"precision": "fp32", "workspace_mb": 64, "builder_optimization_level": 3, "max_batch": 16,
            "dla_core": -1, "gpu_fallback": False}


@pytest.fixture
def trt_settings():
    return SETTINGS


@pytest.fixture(scope="module")
def inputs(synthetic_test):
    return np.ascontiguousarray(synthetic_test[1][:64], dtype=np.float32)


def _segment_of_context(backend) -> dict:
    return {id(c): k for k, eng in enumerate(backend._segments) for c in eng.contexts if c is not None}


def test_each_pipeline_stage_has_its_own_stream_and_uploads_have_theirs(double, art, inputs):
    """Item 5: stage k runs on lane k, and uploads go to a copy stream that no stage uses (before: `k % lanes`
    with uploads on lane 0, and on 8.5 a single lane for everything)."""
    with TensorRTBackend(art) as b:
        before = len(double.ops)
        batches = [inputs[i:i + 8] for i in range(0, 48, 8)]
        runner = EarlyExitRunner(art, b)
        got = list(runner.predict_stream(batches, pipelined=True))
        ops = double.ops[before:]
        seg_of = _segment_of_context(b)
        streams_by_segment: dict = {}
        for kind, handle, info in ops:
            if kind == "execute" and info["context"] in seg_of:
                streams_by_segment.setdefault(seg_of[info["context"]], set()).add(handle)
        assert set(streams_by_segment) == set(range(art.num_exits))
        assert all(len(h) == 1 for h in streams_by_segment.values())  # a stage never moves
        stage_streams = [next(iter(streams_by_segment[k])) for k in range(art.num_exits)]
        assert len(set(stage_streams)) == art.num_exits  # no two stages share a stream
        uploads = {handle for kind, handle, _ in ops if kind == "htod" and _ is not None and _["bytes"] > 64}
        assert uploads and not uploads & set(stage_streams)  # the images go up on a stream of their own
        ref = EarlyExitRunner(art, "onnxruntime")
        for g, xb in zip(got, batches):
            np.testing.assert_array_equal(g.exits, ref.predict(xb).exits)
        assert b.lanes == compat.lanes_for(art.num_exits) == 2  # one lane per stage, at least two


def test_one_host_round_trip_per_exit(double, art, inputs):
    """Item 6: the logits come back with the entropy, so deciding an exit where some samples leave and others
    go on costs one host wait (before: the entropy's, then the leaving rows' logits' own)."""
    with TensorRTBackend(art) as b:
        runner = EarlyExitRunner(art, b)
        runner.predict(inputs[:16])  # allocations happen once
        before = len(double.ops)
        out = runner.predict(inputs[:16], return_logits=True)
        assert 0 < (out.exits == 0).sum() < 16  # both exits answer: a decision with leavers and stayers
        ops = double.ops[before:]
        launches = sum(1 for kind, _, info in ops if kind == "execute" and info["inputs"] == ["x"])
        waits = [info for kind, _, info in ops if kind == "host-wait"]
        assert launches == art.num_exits and len(waits) == launches
        ref = EarlyExitRunner(art, "onnxruntime").predict(inputs[:16], return_logits=True)
        np.testing.assert_array_equal(out.exits, ref.exits)
        np.testing.assert_allclose(out.logits, ref.logits, rtol=1e-5, atol=1e-5)


def test_a_backend_built_and_used_on_a_worker_thread_leaves_no_context_pushed(double, art, inputs):
    """Item 8: pycuda aborts the process when a thread ends with a context on its stack (cuda.hpp
    `context_stack::~context_stack`); `pycuda.autoprimaryctx` pushed the primary context on whichever thread
    built the first backend, for good. The backend retains it and pushes it only around each call."""
    made, errors = {}, []

    def worker():
        try:
            b = TensorRTBackend(art)
            made["b"] = b
            made["labels"] = EarlyExitRunner(art, b).predict(inputs[:8]).labels
            made["stack"] = list(double.state.ctx_stack())
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    import gc

    gc.collect()
    assert not errors, errors
    assert made["stack"] == []  # nothing left pushed on the worker between calls
    assert not any("abort" in v for v in double.violations)
    b = made["b"]
    assert double.state.ctx_stack() == []
    labels = EarlyExitRunner(art, b).predict(inputs[:8]).labels  # the main thread uses it too
    np.testing.assert_array_equal(labels, made["labels"])
    assert double.state.ctx_stack() == []
    b.close()
    assert double.state.ctx_stack() == []


@pytest.mark.parametrize("mode", ["spin", "block"])
def test_host_waits_block_when_asked_and_the_mode_is_recorded(double, art, inputs, mode):
    """Item 9: read-back events carry BLOCKING_SYNC with host_wait="block" (the waiting thread sleeps instead of
    spinning a core, whose power would count as inference energy); the mode is in describe() for results."""
    with TensorRTBackend(art, {"host_wait": mode}) as b:
        assert b.describe()["host_wait"] == mode
        before = len(double.ops)
        EarlyExitRunner(art, b).predict(inputs[:16])
        waits = [info for kind, _, info in double.ops[before:] if kind == "host-wait"]
        assert waits and all(w["blocking"] is (mode == "block") for w in waits)
    with pytest.raises(EdgeBranchyError, match="host_wait must be one of spin, block"):
        TensorRTBackend(art, {"host_wait": "yield"})


def test_bench_records_the_host_wait_mode(monkeypatch, tiny_artifact, tmp_path):
    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.session import run_bench

    d = install(monkeypatch, "10.3.0")
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    build_engines(art, {**SETTINGS, "max_batch": 4}, log=lambda s: None)
    cfg = BenchConfig(artifact=str(art), out=str(tmp_path / "r.json"), backend="tensorrt", profile="x86-cpu",
                      power="estimate", dataset="synthetic", batch_size=1, samples=4, trials=1, warmup=1,
                      min_window_s=0.0, idle_s=0.0, segment_repeats=2, backend_options={"host_wait": "block"})
    run = run_bench(cfg, log=lambda s: None, progress=False)["runs"][0]
    assert run["environment"]["backend_options"]["host_wait"] == "block"
    assert_clean(d)
