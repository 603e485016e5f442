"""Exit-rate drift: do the exits taken on this device match the calibration's expected fractions?

Each exit k is tested on its own: the number of samples that left there, out
of n, against a binomial with the calibrated fraction p_k (two-sided exact
test: the probability of every count at most as likely as the observed one).
The smallest p-value, Bonferroni-corrected over the K exits, is compared with
`alpha`. A drift means the data has shifted or the engine's numerics differ
from those the thresholds were calibrated on (numpy only).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError

DEFAULT_ALPHA = 1e-3
MIN_SAMPLES = 30
_EXACT_UP_TO = 5_000_000  # above this, the normal approximation (with continuity correction)


def binomial_pvalue(k: int, n: int, p: float) -> float:
    """Two-sided p-value of observing k successes in n trials with success probability p."""
    if n < 0 or not 0 <= k <= n:
        raise EdgeBranchyError(f"binomial test needs 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 <= p <= 1.0:
        raise EdgeBranchyError(f"binomial test needs 0 <= p <= 1, got {p}")
    if n == 0:
        return 1.0
    if p == 0.0 or p == 1.0:
        return 1.0 if k == round(p * n) else 0.0
    if n > _EXACT_UP_TO:
        sd = math.sqrt(n * p * (1 - p))
        z = max(0.0, abs(k - n * p) - 0.5) / sd
        return float(math.erfc(z / math.sqrt(2)))
    i = np.arange(n + 1, dtype=np.float64)
    # log C(n, i) by cumulative sums of log((n - i + 1) / i)
    logc = np.concatenate(([0.0], np.cumsum(np.log(n - i[1:] + 1) - np.log(i[1:]))))
    logpmf = logc + i * math.log(p) + (n - i) * math.log1p(-p)
    # relative tolerance as in common exact implementations: ties in probability count as "as extreme"
    extreme = logpmf <= logpmf[k] + 1e-7
    m = logpmf.max()
    return float(min(1.0, np.exp(logpmf[extreme] - m).sum() * math.exp(m)))


@dataclass
class DriftResult:
    n: int
    observed: list[float]
    expected: list[float]
    pvalues: list[float]
    pvalue: float  # min over exits, Bonferroni-corrected
    alpha: float
    drifted: bool
    tested: bool  # False when there were too few samples to say

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """The one-line warning (or note) for stderr."""
        obs = "/".join(f"{v * 100:.1f}%" for v in self.observed)
        exp = "/".join(f"{v * 100:.1f}%" for v in self.expected)
        if not self.tested:
            return f"exit rates {obs} on {self.n} samples: too few to test against the calibration's {exp}"
        head = "warning: exit rates drifted from the calibration" if self.drifted else "exit rates match the calibration"
        return (f"{head}: p={self.pvalue:.3g} (binomial, Bonferroni over {len(self.observed)} exits, alpha "
                f"{self.alpha:g}); observed {obs} vs calibrated {exp} on {self.n} samples"
                + ("; the data has shifted or this engine's numerics differ: re-run `edgebranchy calibrate "
                   "ARTIFACT` on this device" if self.drifted else ""))


def exit_rate_drift(counts: Sequence[int], expected: Sequence[float], alpha: float = DEFAULT_ALPHA,
                    min_samples: int = MIN_SAMPLES) -> DriftResult:
    """Test exit counts (one per exit) against the calibrated exit fractions."""
    c = [int(v) for v in counts]
    e = [float(v) for v in expected]
    if len(c) != len(e):
        raise EdgeBranchyError(f"{len(c)} exit counts but {len(e)} expected fractions")
    if any(v < 0 for v in c) or any(not 0 <= v <= 1 for v in e):
        raise EdgeBranchyError("exit counts must be >= 0 and expected fractions in [0, 1]")
    total = sum(e)
    if total <= 0:
        raise EdgeBranchyError("expected exit fractions sum to 0")
    e = [v / total for v in e]  # rounding in stored records
    n = sum(c)
    obs = [v / n if n else 0.0 for v in c]
    if n < min_samples:
        return DriftResult(n, obs, e, [1.0] * len(c), 1.0, alpha, False, False)
    pv = [binomial_pvalue(k, n, p) for k, p in zip(c, e)]
    p_min = min(1.0, min(pv) * len(pv))
    return DriftResult(n, obs, e, pv, p_min, alpha, p_min < alpha, True)


def expected_fractions(manifest: dict) -> tuple[list[float] | None, str]:
    """The exit fractions the artifact's thresholds were calibrated to give, per segment, and where from.

    A device calibration applied to the artifact wins over the original one. The
    original record counts model exits; segments map to them through
    `exits[k].model_exit` (side exits fused away at export had fraction 0).
    """
    dev = manifest.get("device_calibration") or {}
    active = dev.get("applied")
    if active and active in (dev.get("records") or {}):
        rec = dev["records"][active]
        return list(rec["validation"]["exit_fractions"]), f"device calibration {active}"
    cal = manifest.get("calibration") or {}
    try:
        fr = cal["validation"]["exit_fractions"]
    except (KeyError, TypeError):
        return None, "the artifact records no calibration"
    exits = manifest.get("exits", [])
    idx = [e.get("model_exit", k) for k, e in enumerate(exits)]
    if len(fr) == len(exits) and idx == list(range(len(exits))):
        return list(fr), "calibration (validation split)"
    try:
        return [fr[j] for j in idx], "calibration (validation split)"
    except (IndexError, TypeError):
        return None, "the calibration's exits do not match the artifact's"
