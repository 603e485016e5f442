"""Batch-1 calls through IOBinding (runtime/backends/ort_bound.py): the same answers as plain runs,
answers that stay the caller's own although the buffers are reused, one set of buffers per thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.ort_bound import batch1_shape, bind_chain
from edgebranchy.runtime.runner import EarlyExitRunner


def _median_threshold(art_dir, x) -> float:
    with EarlyExitRunner(art_dir, options={"iobinding": False}) as r:
        return float(np.nanmedian(r.backend.launch(0, x[:64]).entropy()))


def test_answers_equal_plain_runs_and_stay_the_callers_own(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    xs = x[:60].copy()
    xs[5] = np.nan  # a NaN sample never leaves early, through the buffers too
    t = _median_threshold(tiny_artifact, xs)
    with EarlyExitRunner(tiny_artifact, thresholds=[t], form="segments") as bound, \
            EarlyExitRunner(tiny_artifact, thresholds=[t], form="segments", options={"iobinding": False}) as plain:
        assert bound.backend.describe()["batch1_iobinding"] is True
        assert plain.backend.describe()["batch1_iobinding"] is False
        got = [bound.predict(xs[i:i + 1], return_logits=True) for i in range(len(xs))]
        want = [plain.predict(xs[i:i + 1], return_logits=True) for i in range(len(xs))]
        base_b = [bound.backend.run_baseline(xs[i:i + 1]) for i in range(len(xs))]
        base_p = [plain.backend.run_baseline(xs[i:i + 1]) for i in range(len(xs))]
    exits = [int(p.exits[0]) for p in got]
    assert 0 < exits.count(0) < len(exits) and exits[5] == 1  # both exits were taken
    for g, w in zip(got, want):  # later calls overwrote the buffers: every kept answer is unchanged
        assert g.exits.tolist() == w.exits.tolist() and g.labels.tolist() == w.labels.tolist()
        np.testing.assert_array_equal(g.entropy, w.entropy)
        np.testing.assert_array_equal(g.logits, w.logits)
    assert np.isnan(got[5].entropy[0])
    for g, w in zip(base_b, base_p):
        np.testing.assert_array_equal(g, w)


def test_threads_never_share_buffers(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    xs = x[:40]
    t = _median_threshold(tiny_artifact, xs)
    with EarlyExitRunner(tiny_artifact, thresholds=[t], form="segments") as r:
        want = [r.predict(xs[i:i + 1], return_logits=True) for i in range(len(xs))]
        got: dict[int, list] = {}
        barrier = threading.Barrier(3)

        def work(tid: int) -> None:
            barrier.wait()
            got[tid] = [r.predict(xs[i:i + 1], return_logits=True) for _ in range(5) for i in range(len(xs))]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    for tid in range(3):
        for j, p in enumerate(got[tid]):
            w = want[j % len(xs)]
            assert p.exits.tolist() == w.exits.tolist()
            np.testing.assert_array_equal(p.logits, w.logits)


def test_batch1_shape():
    class Arg:
        def __init__(self, shape):
            self.shape = shape

    assert batch1_shape(Arg(["N", 16, 12, 12])) == (1, 16, 12, 12)
    assert batch1_shape(Arg(["N", "C", 12, 12])) is None  # only the batch axis may be symbolic
    assert batch1_shape(Arg([])) is None


def test_a_shape_known_only_at_run_time_is_not_bound(tiny_artifact, synthetic_test):
    """A segment whose features shape is only known at run time cannot be bound: the backend keeps to plain
    runs and answers as it does with IOBinding off."""
    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact, form="segments") as r, \
            EarlyExitRunner(tiny_artifact, form="segments", options={"iobinding": False}) as plain:
        b = r.backend

        class Unknown:  # segment 0's session, reporting a symbolic channel axis on its first output
            def __init__(self, sess):
                self._s, self._sess = sess, sess._sess

            def get_inputs(self):
                return self._s.get_inputs()

            def get_outputs(self):
                outs = self._s.get_outputs()

                class Arg:
                    name, type, shape = outs[0].name, outs[0].type, ["N", "C", 1, 1]
                return [Arg(), *outs[1:]]

            def io_binding(self):
                return self._s.io_binding()

        idx = [i[0] for i in b._idx]
        assert bind_chain(b._ort, b.sessions, b._outputs, idx) is not None
        assert bind_chain(b._ort, [Unknown(b.sessions[0]), b.sessions[1]], b._outputs, idx) is None
        b._bound.chain = False  # what the backend stores when bind_chain gives None
        for i in range(20):
            got, want = r.predict(x[i:i + 1], return_logits=True), plain.predict(x[i:i + 1], return_logits=True)
            assert got.exits.tolist() == want.exits.tolist()
            np.testing.assert_array_equal(got.logits, want.logits)


def test_single_graph_answers_equal_plain_runs(tiny_artifact, synthetic_test):
    _, x, _ = synthetic_test
    xs = x[:40].copy()
    xs[3] = np.nan
    t = _median_threshold(tiny_artifact, xs)
    with EarlyExitRunner(tiny_artifact, thresholds=[t], form="single-graph") as bound, \
            EarlyExitRunner(tiny_artifact, thresholds=[t], form="single-graph",
                            options={"iobinding": False}) as plain:
        got = [bound.predict(xs[i:i + 1], return_logits=True) for i in range(len(xs))]
        want = [plain.predict(xs[i:i + 1], return_logits=True) for i in range(len(xs))]
    exits = [int(p.exits[0]) for p in got]
    assert 0 < exits.count(0) < len(exits) and exits[3] == 1
    for g, w in zip(got, want):  # each kept answer is unchanged by the calls after it
        for name in ("labels", "exits", "entropy", "logits"):
            np.testing.assert_array_equal(getattr(g, name), getattr(w, name))


def test_new_thresholds_reach_a_loaded_single_graph(tiny_artifact, synthetic_test):
    """Assigning runner.thresholds reloads the single graph's threshold initializers (and its bindings)."""
    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact, thresholds=[1e9], form="single-graph") as r:
        assert {int(r.predict(x[i:i + 1]).exits[0]) for i in range(10)} == {0}
        r.thresholds = [0.0]
        assert {int(r.predict(x[i:i + 1]).exits[0]) for i in range(10)} == {1}
        with pytest.raises(EdgeBranchyError, match="threshold"):
            r.thresholds = [float("nan")]
        assert r.thresholds == [0.0]


def test_a_binding_that_does_not_follow_its_buffers_is_refused(tiny_artifact):
    """Bound sets are checked once against plain runs; one that does not see new input is not used."""
    from edgebranchy.runtime.backends import ort_bound

    with EarlyExitRunner(tiny_artifact, form="segments") as r:
        b = r.backend
        chain = bind_chain(b._ort, b.sessions, b._outputs, [i[0] for i in b._idx])
        assert ort_bound._agrees(chain, b.sessions, b._outputs)
        chain[0].run = lambda: None  # as if the input had been copied when bound: outputs never change
        assert not ort_bound._agrees(chain, b.sessions, b._outputs)


def test_the_public_api_binds_where_the_private_one_is_absent(tiny_artifact, synthetic_test):
    """The bound call uses ONNX Runtime's private binding call (measured faster); a session that offers only the
    public API (io_binding, run_with_iobinding, run) is bound too and answers as plain runs do."""
    from edgebranchy.runtime.backends.ort_bound import bind_one

    _, x, _ = synthetic_test

    class PublicOnly:  # the public InferenceSession API and nothing private
        def __init__(self, sess):
            self._s = sess

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            return getattr(self._s, name)

    with EarlyExitRunner(tiny_artifact, form="segments", options={"iobinding": False}) as r:
        sess = r.backend.sessions[0]
        names = r.backend._outputs[0]
        call = bind_one(r.backend._ort, PublicOnly(sess), names)
        assert call is not None and call.run.__code__ is not bind_one(r.backend._ort, sess, names).run.__code__
        for i in range(10):
            assert call.feed(x[i:i + 1])
            call.run()
            for got, want in zip(call.outs, sess.run(names, {"x": x[i:i + 1]})):
                np.testing.assert_array_equal(got, want)
