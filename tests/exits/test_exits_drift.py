"""Exit-rate drift: the binomial test, the expected fractions, and `predict` warning on a shifted input stream."""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.cli import main
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.drift import binomial_pvalue, exit_rate_drift, expected_fractions


@pytest.mark.parametrize("k,n,p", [(3, 10, 0.5), (0, 20, 0.1), (17, 20, 0.5), (250, 500, 0.52), (1, 1000, 0.01),
                                   (40, 100, 0.3)])
def test_binomial_pvalue_matches_scipy(k, n, p):
    stats = pytest.importorskip("scipy.stats")
    assert binomial_pvalue(k, n, p) == pytest.approx(stats.binomtest(k, n, p).pvalue, rel=1e-6)


def test_binomial_edges_and_errors():
    assert binomial_pvalue(0, 0, 0.3) == 1.0
    assert binomial_pvalue(0, 10, 0.0) == 1.0 and binomial_pvalue(1, 10, 0.0) == 0.0
    # the normal approximation path agrees with the exact one near its switch-over
    from edgebranchy.exits import drift

    exact = binomial_pvalue(5_000_000 // 2 + 1500, 5_000_000, 0.5)
    approx = binomial_pvalue(6_000_000 // 2 + 1643, 6_000_000, 0.5)  # same z, approximation
    assert drift._EXACT_UP_TO == 5_000_000 and approx == pytest.approx(exact, rel=0.05)
    with pytest.raises(EdgeBranchyError):
        binomial_pvalue(11, 10, 0.5)


def test_exit_rate_drift_decisions():
    same = exit_rate_drift([260, 240], [0.5, 0.5])
    assert same.tested and not same.drifted and "match" in same.line()
    moved = exit_rate_drift([100, 400], [0.5, 0.5])
    assert moved.drifted and moved.pvalue < 1e-30 and moved.line().startswith("warning: exit rates drifted")
    assert "observed 20.0%/80.0% vs calibrated 50.0%/50.0% on 500 samples" in moved.line()
    few = exit_rate_drift([0, 10], [0.5, 0.5])
    assert not few.tested and not few.drifted and "too few" in few.line()
    with pytest.raises(EdgeBranchyError, match="2 exit counts but 3"):
        exit_rate_drift([1, 2], [0.2, 0.3, 0.5])


def test_expected_fractions_follow_segments_and_device_calibration():
    m = {"exits": [{"model_exit": 0}, {"model_exit": 2}],
         "calibration": {"validation": {"exit_fractions": [0.6, 0.0, 0.4]}}}
    assert expected_fractions(m) == ([0.6, 0.4], "calibration (validation split)")
    m["device_calibration"] = {"applied": "onnxruntime/fp32",
                               "records": {"onnxruntime/fp32": {"validation": {"exit_fractions": [0.3, 0.7]}}}}
    assert expected_fractions(m) == ([0.3, 0.7], "device calibration onnxruntime/fp32")
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
    assert line.startswith("warning: exit rates drifted from the calibration: p=") and "calibrated 50.0%/50.0%" in line
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
