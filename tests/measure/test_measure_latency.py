import math
import time

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.latency import Timer, ci95_across_trials, median_ci95, now_ns, summarize, t95


def test_summarize_matches_numpy_linear_percentiles():
    x = [float(v) for v in range(1, 101)]
    s = summarize(x)
    assert set(s) == {"p50", "p90", "p99", "p999", "mean", "trimmed", "std", "n", "min", "max"}
    assert s["trimmed"] == pytest.approx(np.mean(x[10:90]))  # 10% cut at each end
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert s["p999"] == pytest.approx(np.percentile(x, 99.9))
    assert s["mean"] == pytest.approx(50.5)
    assert s["std"] == pytest.approx(np.std(x, ddof=1))
    assert (s["n"], s["min"], s["max"]) == (100, 1.0, 100.0)


def test_summarize_single_sample_has_zero_std():
    s = summarize([3.5])
    assert s["std"] == 0.0 and s["p999"] == 3.5 and s["n"] == 1


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf")], []])
def test_summarize_refuses_nan_inf_and_empty(bad):
    with pytest.raises(EdgeBranchyError):
        summarize(bad)


def test_ci95_one_trial_is_a_point():
    assert ci95_across_trials([2.5]) == (2.5, 2.5)


def test_ci95_uses_student_t():
    v = [1.0, 2.0, 3.0, 4.0, 5.0]
    lo, hi = ci95_across_trials(v)
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert lo == pytest.approx(3 - half) and hi == pytest.approx(3 + half)


def test_ci95_large_sample_uses_normal_value():
    v = [float(i % 7) for i in range(500)]
    lo, hi = ci95_across_trials(v)
    sd = np.std(v, ddof=1)
    assert (hi - lo) / 2 == pytest.approx(1.96 * sd / math.sqrt(500))


def test_t_table_is_decreasing_and_conservative_between_entries():
    values = [t95(df) for df in range(1, 200)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert t95(1) == 12.706 and t95(30) == 2.042
    assert t95(35) == 2.042  # rounded down to df 30: wider, never narrower
    with pytest.raises(EdgeBranchyError):
        t95(0)


def test_ci95_refuses_nan():
    with pytest.raises(EdgeBranchyError):
        ci95_across_trials([1.0, float("nan")])


def test_median_ci95_is_a_t_interval_over_the_trials():
    v = [1.0, 2.0, 10.0]
    r = median_ci95(v)
    assert r["median"] == 2.0 and r["mean"] == pytest.approx(13 / 3) and r["n"] == 3
    assert r["values"] == v and r["trials"] == [0, 1, 2]
    logs = np.log(v)
    half = 4.303 * np.std(logs, ddof=1) / math.sqrt(3)   # t with 2 degrees of freedom, on the log scale
    assert r["ci95"] == pytest.approx([2.0 * math.exp(-half), 2.0 * math.exp(half)])
    # three trials that disagree give a wide interval, not one pinned between the data
    assert r["ci95"][0] < 1.0 and r["ci95"][1] > 10.0
    tight = median_ci95([5.0] * 4 + [5.1] * 4)["ci95"]
    assert tight[0] < 5.05 < tight[1] and 0 < tight[1] - tight[0] < 0.2
    assert median_ci95([3.0], trials=[4]) == {"median": 3.0, "ci95": None, "mean": 3.0, "n": 1, "values": [3.0],
                                              "trials": [4]}   # one trial: no interval
    dyn = median_ci95([-0.5, 0.5, 1.5])   # dynamic energy can be negative: a t interval on the values
    assert dyn["ci95"] == pytest.approx([0.5 - 4.303 / math.sqrt(3), 0.5 + 4.303 / math.sqrt(3)])
    with pytest.raises(EdgeBranchyError):
        median_ci95([float("nan")])


def test_now_ns_is_monotonic_nanoseconds():
    a = now_ns()
    time.sleep(0.002)
    b = now_ns()
    assert isinstance(a, int) and b - a >= 2_000_000


def test_timer_calls_sync_at_both_ends_and_measures():
    calls = []
    with Timer(sync=lambda: calls.append(now_ns())) as t:
        time.sleep(0.01)
    assert len(calls) == 2
    assert 9.0 <= t.elapsed_ms < 1000
    assert calls[0] <= t.start_ns and calls[1] <= t.end_ns


def test_timer_stop_without_start():
    with pytest.raises(EdgeBranchyError):
        Timer().stop()
