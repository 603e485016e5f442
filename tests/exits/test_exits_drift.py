"""Exit-rate drift: the exact bounds, the two-sample decision, the expected fractions, and `predict` warning
on a shifted input stream (its false-alarm rate: test_exits_drift_level.py)."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.cli import main
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.drift import exit_rate_drift, expected_fractions, lower_bound, upper_bound


@pytest.mark.parametrize("x,n,beta", [(0, 10, 0.05), (3, 10, 0.05), (10, 10, 0.05), (100, 200, 2.5e-4),
                                       (1, 10000, 1e-4), (9990, 10000, 1e-4), (5000, 10000, 1e-3)])
def test_clopper_pearson_bounds_match_scipy(x, n, beta):
    stats = pytest.importorskip("scipy.stats")
    want_lo = stats.beta.ppf(beta, x, n - x + 1) if x > 0 else 0.0
    want_hi = stats.beta.ppf(1 - beta, x + 1, n - x) if x < n else 1.0
    assert lower_bound(x, n, beta) == pytest.approx(want_lo, rel=1e-9, abs=1e-15)
    assert upper_bound(x, n, beta) == pytest.approx(want_hi, rel=1e-9, abs=1e-15)


def test_bounds_edges_and_errors(monkeypatch):
    assert lower_bound(0, 50, 0.01) == 0.0 and upper_bound(50, 50, 0.01) == 1.0
    # x = 0: the closed form 1 - beta^(1/n)
    assert upper_bound(0, 2000, 1e-3) == pytest.approx(1 - 1e-3 ** (1 / 2000), rel=1e-9)
    # the normal approximation used above a million samples agrees with the exact bound
    from edgebranchy.exits import drift

    assert drift._EXACT_UP_TO == 1_000_000
    exact = [drift.lower_bound(x, 100_000, 1e-4) for x in (50_000, 300, 99_000)]
    monkeypatch.setattr(drift, "_EXACT_UP_TO", 1000)
    approx = [drift.lower_bound(x, 100_000, 1e-4) for x in (50_000, 300, 99_000)]
    assert approx == pytest.approx(exact, rel=0.02)
    with pytest.raises(EdgeBranchyError):
        lower_bound(11, 10, 0.5)
    with pytest.raises(EdgeBranchyError):
        lower_bound(1, 10, 0.0)


def test_exit_rate_drift_decisions():
    same = exit_rate_drift([260, 240], [0.5, 0.5], 200)
    assert same.tested and not same.drifted and "match" in same.line()
    moved = exit_rate_drift([100, 400], [0.5, 0.5], 200)
    assert moved.drifted and moved.drifted_exits == [0, 1] and moved.line().startswith("warning: exit rates drifted")
    assert "observed 20.0%/80.0% on 500 samples vs calibrated 50.0%/50.0% on 200 validation samples" in moved.line()
    assert "minimum effect 3 points" in moved.line() and "alpha 0.001" in moved.line()
    lo, hi = moved.difference_bounds[0]
    assert lo <= -0.3 <= hi < -0.03
    # an exit calibrated at 0% (or 100%): a few samples crossing is no drift (the one-sample test said p=0)
    edge = exit_rate_drift([9990, 10], [1.0, 0.0], 2000)
    assert edge.tested and not edge.drifted
    assert exit_rate_drift([9000, 1000], [1.0, 0.0], 2000).drifted
    # a change smaller than the minimum effect is not reported however many samples show it
    assert not exit_rate_drift([520_000, 480_000], [0.5, 0.5], 1_000_000).drifted
    assert exit_rate_drift([520_000, 480_000], [0.5, 0.5], 1_000_000, min_effect=0.01).drifted
    assert not exit_rate_drift([100, 400], [0.5, 0.5], 200, alpha=0.0).drifted
    few = exit_rate_drift([0, 10], [0.5, 0.5], 200)
    assert not few.tested and not few.drifted and "too few" in few.line()
    with pytest.raises(EdgeBranchyError, match="2 exit counts but 3"):
        exit_rate_drift([1, 2], [0.2, 0.3, 0.5], 100)


def test_expected_fractions_follow_segments_and_device_calibration():
    m = {"exits": [{"model_exit": 0}, {"model_exit": 2}],
         "calibration": {"validation": {"exit_fractions": [0.6, 0.0, 0.4], "n": 500}}}
    assert expected_fractions(m) == ([0.6, 0.4], 500, "calibration (validation split)")
    m["device_calibration"] = {"applied": "onnxruntime/fp32",
                               "records": {"onnxruntime/fp32": {"validation": {"exit_fractions": [0.3, 0.7],
                                                                               "n": 400}}}}
    assert expected_fractions(m) == ([0.3, 0.7], 400, "device calibration onnxruntime/fp32")
    assert expected_fractions({"exits": [{}, {}]})[0] is None


def _mnist_dir(d, images: np.ndarray, labels: np.ndarray):
    """An MNIST-format directory whose test split is `images` (what the artifact will see)."""
    import importlib.util

    from eb_testutil import ROOT

    spec = importlib.util.spec_from_file_location("data_idx_files", ROOT / "tests/data/data_idx_files.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    write_idx = mod.write_idx
    d.mkdir(parents=True, exist_ok=True)
    write_idx(d / "train-images-idx3-ubyte", images[:, 0])
    write_idx(d / "train-labels-idx1-ubyte", labels.astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", images[:, 0])
    write_idx(d / "t10k-labels-idx1-ubyte", labels.astype(np.uint8))
    return d


def test_predict_warns_on_a_shifted_input_stream(tiny_artifact, tmp_path, capsys):
    from edgebranchy.data import load_dataset

    test = load_dataset("synthetic").test
    plain = _mnist_dir(tmp_path / "plain", test.x, test.y)
    assert main(["predict", str(tiny_artifact), "--dataset", "mnist", "--data-dir", str(plain)]) == 0
    out = capsys.readouterr()
    assert "exit rates match the calibration" in out.out and "drifted" not in out.err
    rng = np.random.default_rng(0)
    noisy = np.clip(test.x.astype(np.float64) + rng.normal(0, 60, test.x.shape), 0, 255).astype(np.uint8)
    shifted = _mnist_dir(tmp_path / "noisy", noisy, test.y)
    assert main(["predict", str(tiny_artifact), "--dataset", "mnist", "--data-dir", str(shifted)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [l for l in err if "drifted" in l]
    assert line.startswith("warning: exit rates drifted from the calibration: observed") and "calibrated 50.0%/50.0%" in line
    # the minimum effect is the user's: a change of at most 100 points is never reported
    assert main(["predict", str(tiny_artifact), "--dataset", "mnist", "--data-dir", str(shifted),
                 "--drift-min-effect", "100"]) == 0
    out = capsys.readouterr()
    assert "drifted" not in out.err and "no exit is shown to differ by more than 100 points" in out.out
    # hand-picked thresholds have no calibrated fractions: no test, no warning
    assert main(["predict", str(tiny_artifact), "--dataset", "mnist", "--data-dir", str(shifted),
                 "--thresholds", "0.5"]) == 0
    assert "exit rates" not in capsys.readouterr().err


def test_runner_counts_exits_on_every_path(tiny_artifact, synthetic_test):
    from edgebranchy.runtime.runner import EarlyExitRunner

    _, x, _ = synthetic_test
    with EarlyExitRunner(tiny_artifact) as r:
        p = r.predict(x[:50])
        want = np.bincount(p.exits, minlength=2).tolist()
        assert r.exit_counts == want
        r.reset_exit_counts()
        for i in range(10):
            r.predict(x[i:i + 1])  # the batch-1 path
        assert sum(r.exit_counts) == 10
        r.reset_exit_counts()
        list(r.predict_stream([x[:25], x[25:50]], pipelined=True))
        assert r.exit_counts == want
