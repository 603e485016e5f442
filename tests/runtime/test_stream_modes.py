"""predict_stream's modes: concurrent batches give the sequential answers, in order, on worker threads; "auto" runs
what choose_stream measured fastest; the worker count comes from the CPUs the process may use."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.runner import EarlyExitRunner
from edgebranchy.util.cpus import CpuBudget


@pytest.fixture(scope="module")
def runner(tiny_artifact):
    with EarlyExitRunner(tiny_artifact) as r:
        yield r


def _batches(synthetic_test, size=16, n=200):
    _, x, _ = synthetic_test
    return [x[i:i + size] for i in range(0, n, size)]


def _spy_threads(r, monkeypatch) -> set:
    """Names of the threads that call the backend's launch from now on."""
    names: set = set()
    real = r.backend.launch

    def launch(k, x, lane=0):
        names.add(threading.current_thread().name)
        return real(k, x, lane)

    monkeypatch.setattr(r.backend, "launch", launch)
    return names


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_concurrent_equals_sequential_in_order(runner, synthetic_test, workers):
    batches = _batches(synthetic_test, size=7)
    runner.reset_exit_counts()
    seq = [runner.predict(b) for b in batches]
    counts = list(runner.exit_counts)
    runner.reset_exit_counts()
    got = list(runner.predict_stream(batches, mode="concurrent", workers=workers))
    assert [len(p) for p in got] == [len(b) for b in batches]
    for a, b in zip(seq, got):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.exits, b.exits)
        np.testing.assert_array_equal(a.entropy, b.entropy)
    assert runner.exit_counts == counts  # the counts are shared by the worker threads, none lost


def test_concurrent_runs_on_worker_threads(tiny_artifact, synthetic_test, monkeypatch):
    with EarlyExitRunner(tiny_artifact, thresholds=[0.0]) as r:
        names = _spy_threads(r, monkeypatch)
        list(r.predict_stream(_batches(synthetic_test), mode="concurrent", workers=2))
        assert names and all(n.startswith("eb-batch") for n in names)


def test_auto_runs_what_was_measured(tiny_artifact, synthetic_test, monkeypatch):
    batches = _batches(synthetic_test)
    with EarlyExitRunner(tiny_artifact, thresholds=[0.0]) as r:
        assert r.stream_mode == "sequential"  # nothing measured: one batch after another
        names = _spy_threads(r, monkeypatch)
        list(r.predict_stream(batches))
        assert names == {threading.current_thread().name}
        rec = r.choose_stream(batches[:6], rounds=2, workers=2)
        modes = ["sequential", "pipelined", "concurrent"]
        assert all(rec[f"{m}_us"] > 0 for m in modes)
        assert rec["choice"] in modes and rec[f"{rec['choice']}_us"] == min(rec[f"{m}_us"] for m in modes)
        assert r.stream_mode == rec["choice"] and rec["choice"] in r.stream_reason and rec["workers"] == 2
        r.stream_mode = "concurrent"  # what auto runs follows the recorded choice
        names.clear()
        list(r.predict_stream(batches))
        assert all(n.startswith("eb-batch") for n in names)


def test_choose_stream_needs_a_stream(runner, synthetic_test):
    with pytest.raises(EdgeBranchyError, match="two batches"):
        runner.choose_stream(_batches(synthetic_test)[:1])


def test_unknown_mode_is_a_user_error(runner, synthetic_test):
    with pytest.raises(EdgeBranchyError, match="mode must be one of"):
        list(runner.predict_stream(_batches(synthetic_test), mode="parallel"))


@pytest.mark.parametrize("cpus,threads,expected", [(2, 1, 2), (8, 2, 4), (2, 2, 1), (1, 1, 1), (3, 4, 1)])
def test_workers_divide_the_usable_cpus_by_the_threads_per_call(runner, monkeypatch, cpus, threads, expected):
    import edgebranchy.util.cpus as cpus_mod

    monkeypatch.setattr(cpus_mod, "usable_cpus", lambda root="/": CpuBudget(cpus, 64, cpus, None, "affinity"))
    monkeypatch.setattr(runner.backend, "intra_op_threads", threads)
    assert runner.stream_workers() == expected


def test_a_backend_without_concurrent_calls_refuses_concurrent(runner, synthetic_test, monkeypatch):
    monkeypatch.setattr(type(runner.backend), "concurrent_calls", property(lambda self: False))
    with pytest.raises(EdgeBranchyError, match="one thread at a time"):
        list(runner.predict_stream(_batches(synthetic_test), mode="concurrent", workers=2))
    from edgebranchy.runtime.stream_choice import candidate_modes

    assert candidate_modes(runner, 2) == ["sequential", "pipelined"]


def test_timing_the_modes_leaves_the_exit_counts_alone(tiny_artifact, synthetic_test):
    """choose_stream runs the same batches many times: counting them would make the drift check see the timing
    rounds as traffic (the same samples repeated, not independent ones)."""
    batches = _batches(synthetic_test)
    with EarlyExitRunner(tiny_artifact) as r:
        list(r.predict_stream(batches[:3], mode="sequential"))
        before = list(r.exit_counts)
        assert sum(before) == sum(len(b) for b in batches[:3])
        r.choose_stream(batches[:6], rounds=2, workers=2)
        assert r.exit_counts == before


def test_answering_while_measuring_answers_each_batch_once_in_order(tiny_artifact, synthetic_test):
    """The modes are timed on the stream's own batches as they are answered: the same answers as one sequential
    pass, each sample counted at its exit once, and the choice is what auto runs next."""
    from edgebranchy.runtime.stream_choice import answer_while_measuring

    batches = _batches(synthetic_test, size=8, n=200)   # 25 batches: turns of 2, 2 rounds of 3 modes
    with EarlyExitRunner(tiny_artifact) as r:
        ref = list(r.predict_stream(batches, mode="sequential"))
        once = list(r.exit_counts)
        r.reset_exit_counts()
        preds, rec = answer_while_measuring(r, batches, workers=2)
        assert len(preds) == len(batches)
        for p, q in zip(preds, ref):
            assert np.array_equal(p.labels, q.labels) and np.array_equal(p.exits, q.exits)
        assert r.exit_counts == once
        modes = ["sequential", "pipelined", "concurrent"]
        assert rec["batches"] == 12 and all(rec[f"{m}_us"] > 0 for m in modes)
        assert rec["choice"] == min(modes, key=lambda m: (rec[f"{m}_us"], m != "sequential"))
        assert r.stream_mode == rec["choice"]
        short, srec = answer_while_measuring(r, batches[:5], workers=2)
        assert len(short) == 5 and srec["choice"] == "sequential" and "too few" in srec["reason"]
