"""The gate of `edgebranchy compare` on simulated benches (issue 22): its false-alarm rate on A/A pairs and its
detection of a 20% slowdown, over many pairs, at bench's default number of trials.

The noise model is the one the issue measured on a real machine: every trial window (one variant, one trial)
shifted as a whole by a factor drawn uniformly within +-6% (per-trial p50s spread +-5-7% between trials),
independently for the baseline and the branchy window of a round (the harder case: a shift shared by the
round would cancel in the gain), plus call-level noise (log-normal, 15%, and 1% of calls stalled x3). Branchy
is bimodal: 94% of its calls leave early, the rest take 2.8x. Runs are built as bench builds them
(`measure.latency.per_trial_table` over each trial's calls) and judged by `report.compare.compare_runs`.
A second model is the machine this project is benched on (benchmarks/results/gate_noise.md): a spell of
other work slows calls by 1.6x, and the share of a trial window's calls it hits is anything from 0 to 70%,
drawn afresh for every window whatever its length (the measured per-round spread does not shrink with longer
windows); branchy's exits split 60/40, so its p50 jumps between modes from trial to trial. Its per-round
spreads match the measured ones (p50 about 0.21, mean 0.14, trimmed mean 0.15 on the log scale).
Deterministic (fixed seeds); the real machine's figures are in benchmarks/results/compare_gate.md.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgebranchy.bench.config import BenchConfig
from edgebranchy.measure.latency import ci95_across_trials, per_trial_table, summarize
from edgebranchy.report.comparison import compare_runs

TRIALS = BenchConfig(artifact="", out="").trials
CALLS = 800          # calls per trial window
PAIRS = 300
SHIFT = 0.06         # per-trial shifts within +-6%


def _variant(rng: np.random.Generator, center: float, branchy: bool, slowdown: float) -> dict:
    trials = []
    for _ in range(TRIALS):
        calls = center * rng.lognormal(0.0, 0.15, CALLS) * np.where(rng.random(CALLS) < 0.01, 3.0, 1.0)
        if branchy:
            calls = np.where(rng.random(CALLS) < 0.06, calls * 2.8, calls) * (1.0 + slowdown)
        trials.append(calls * (1.0 + rng.uniform(-SHIFT, SHIFT)))
    return _as_bench_records(trials)


def _as_bench_records(trials: list) -> dict:
    """A variant's latency record as bench builds it from each trial's calls."""
    s = summarize(np.concatenate(trials))
    table = per_trial_table(trials)
    return {"accuracy": 0.9, "energy": None,
            "latency_ms": {"per": "sample", **{k: s[k] for k in ("p50", "p90", "p99", "p999", "mean", "trimmed")},
                           "ci95": list(ci95_across_trials(table["mean"])), "trials": table}}


def _run(rng: np.random.Generator, slowdown: float = 0.0, variant=None) -> dict:
    variant = variant or _variant
    return {"config": {"batch_size": 1, "samples": 1000, "trials": TRIALS},
            "variants": {"baseline": variant(rng, 0.14, False, 0.0),
                         "branchy": variant(rng, 0.065, True, slowdown)}}


def _shared_machine(rng: np.random.Generator, center: float, branchy: bool, slowdown: float) -> dict:
    """The second model: slow spells hit 0-70% of a window's calls; branchy's exits split 60/40 (2.4x apart)."""
    trials = []
    for _ in range(TRIALS):
        calls = np.full(400, center)
        if branchy:
            calls = np.where(rng.random(400) < 0.4, 1.08 * center, 0.45 * center) * (1.0 + slowdown)
        calls = calls * rng.lognormal(0.0, 0.08, 400) * np.where(rng.random(400) < rng.uniform(0, 0.7), 1.6, 1.0)
        trials.append(np.where(rng.random(400) < 0.01, 4 * calls, calls))
    return _as_bench_records(trials)


def _fired(old: dict, new: dict) -> bool:
    return any(m["regressed"] for m in compare_runs(old, new, max_regression=0.05))


@pytest.fixture(scope="module")
def rates() -> dict:
    rng = np.random.default_rng(2026)
    aa = sum(_fired(_run(rng), _run(rng)) for _ in range(PAIRS))
    ab = sum(_fired(_run(rng), _run(rng, slowdown=0.2)) for _ in range(PAIRS))
    return {"false_alarm": aa / PAIRS, "detection": ab / PAIRS}


def test_the_gate_rarely_fires_on_identical_benches(rates: dict) -> None:
    assert rates["false_alarm"] <= 0.05, rates


def test_the_gate_catches_a_20_percent_slowdown(rates: dict) -> None:
    assert rates["detection"] >= 0.95, rates


@pytest.fixture(scope="module")
def shared_rates() -> dict:
    rng = np.random.default_rng(1)
    pairs = 300
    aa = sum(_fired(_run(rng, variant=_shared_machine), _run(rng, variant=_shared_machine)) for _ in range(pairs))
    ab = sum(_fired(_run(rng, variant=_shared_machine), _run(rng, 0.2, _shared_machine)) for _ in range(pairs))
    return {"false_alarm": aa / pairs, "detection": ab / pairs}


def test_on_the_shared_machine_the_gate_meets_its_targets(shared_rates: dict) -> None:
    """Bench's default trials (many short ones) and the gated gain (the trimmed mean's; not the bimodal p50's)
    catch a 20% slowdown 95% of the time on the measured machine's noise, and rarely cry wolf."""
    assert shared_rates["false_alarm"] <= 0.05, shared_rates
    assert shared_rates["detection"] >= 0.95, shared_rates


def test_the_shared_machine_spreads_as_measured() -> None:
    """The second model's per-round log gains spread as gate_noise measured: the p50's most, the trimmed mean's
    and the mean's about 0.15."""
    rng = np.random.default_rng(5)
    sd: dict = {"p50": [], "mean": [], "trimmed": []}
    for _ in range(20):
        run = _run(rng, variant=_shared_machine)
        for k in sd:
            b, r = (np.asarray(run["variants"][v]["latency_ms"]["trials"][k]) for v in ("baseline", "branchy"))
            sd[k].append(np.std(np.log(b / r), ddof=1))
    med = {k: float(np.median(v)) for k, v in sd.items()}
    assert 0.10 < med["mean"] < 0.20 and 0.10 < med["trimmed"] < 0.20 and med["p50"] > 0.18, med


def test_the_simulated_trials_spread_as_the_issue_measured() -> None:
    """The model is what it claims: per-trial p50s spread about +-5-7% around their mean."""
    rng = np.random.default_rng(7)
    spreads = []
    for _ in range(200):
        p50 = np.asarray(_variant(rng, 0.14, False, 0.0)["latency_ms"]["trials"]["p50"])
        spreads.append(np.max(np.abs(p50 / p50.mean() - 1)))
    assert 0.03 < np.median(spreads) < 0.07
