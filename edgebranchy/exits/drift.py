"""Exit-rate drift: do the exits taken on this device differ from the calibration's by more than a minimum effect?

The calibrated fraction p1 of exit k is itself an estimate, from the n1 validation samples the
thresholds were chosen on; the observed fraction p2 comes from the n2 samples run here. A one-sample
binomial test that takes p1 as the true rate is anti-conservative (it ignores the validation split's own
sampling error) and, for an exit calibrated at 0% or 100%, turns one sample that crosses into p = 0. So
each exit gets a two-sample test against a minimum effect `min_effect` (default 3 points: smaller
changes are not worth a warning, and a last-bit difference between backends moves a sample or two):

    drift at exit k  <=>  L2 - U1 > min_effect  or  L1 - U2 > min_effect,

with [L1, U1] and [L2, U2] exact one-sided Clopper-Pearson bounds of the two counts, each at level
beta = alpha / (4 m) (m = the number of exits tested: K, or 1 for two exits, whose rates are
complements). Why it holds its level: if |p2 - p1| <= min_effect, an alarm needs at least one of the four
bounds to miss its true rate (L2 > p2, U1 < p1, L1 > p1 or U2 < p2), each of probability at most beta,
so the false-alarm probability is at most alpha, whatever the rates (0% and 100% included) and both
sample sizes: the bounds are exact, not asymptotic. It is conservative (the union bound), which
`tests/exits/test_exits_drift_level.py` measures by resampling a trained model's validation and test
exits. The bounds are computed exactly up to 1,000,000 samples, above that with the Wilson score bound
with continuity correction. Numpy only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError

DEFAULT_ALPHA = 1e-3
DEFAULT_MIN_EFFECT = 0.03  # 3 percentage points
MIN_SAMPLES = 30
_EXACT_UP_TO = 1_000_000
_BISECTIONS = 50
_Z = {}  # normal quantiles, cached per level


class _Binomial:
    """Tail probabilities of Binomial(n, p) for one n (the log binomial coefficients computed once)."""

    def __init__(self, n: int):
        self.n = n
        i = np.arange(n + 1, dtype=np.float64)
        self.i = i
        self.logc = np.concatenate(([0.0], np.cumsum(np.log(n - i[1:] + 1) - np.log(i[1:]))))

    def upper_tail(self, x: int, p: float) -> float:
        """P(X >= x)."""
        if x <= 0 or p >= 1.0:
            return 1.0
        if p <= 0.0:
            return 0.0
        j = self.i[x:]
        lp = self.logc[x:] + j * math.log(p) + (self.n - j) * math.log1p(-p)
        m = float(lp.max())
        return min(1.0, math.exp(m) * float(np.exp(lp - m).sum()))


def _normal_quantile(q: float) -> float:
    """z with P(Z > z) = q, by bisection on erfc (no scipy on the device)."""
    if q not in _Z:
        lo, hi = 0.0, 40.0
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if 0.5 * math.erfc(mid / math.sqrt(2)) > q else (lo, mid)
        _Z[q] = (lo + hi) / 2
    return _Z[q]


def lower_bound(x: int, n: int, beta: float, binomial: _Binomial | None = None) -> float:
    """The exact one-sided (Clopper-Pearson) lower confidence bound of a proportion at level `beta`:
    the p with P(X >= x | p) = beta (0 for x = 0)."""
    if not 0 <= x <= n:
        raise EdgeBranchyError(f"a count must lie in 0..n, got {x} of {n}")
    if not 0.0 < beta < 1.0:
        raise EdgeBranchyError(f"a confidence level must lie in (0, 1), got {beta}")
    if x == 0:
        return 0.0
    if n > _EXACT_UP_TO:  # Wilson score bound with continuity correction
        z, p = _normal_quantile(beta), (x - 0.5) / n
        centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return max(0.0, (centre - half) / (1 + z * z / n))
    b = binomial if binomial is not None and binomial.n == n else _Binomial(n)
    lo, hi = 0.0, x / n
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if b.upper_tail(x, mid) >= beta else (mid, hi)
    return lo


def upper_bound(x: int, n: int, beta: float, binomial: _Binomial | None = None) -> float:
    """The exact one-sided (Clopper-Pearson) upper confidence bound at level `beta` (1 for x = n)."""
    return 1.0 - lower_bound(n - x, n, beta, binomial)


@dataclass
class DriftResult:
    n: int                     # samples seen here
    n_calibration: int         # validation samples the calibrated fractions come from
    observed: list[float]
    expected: list[float]
    difference_bounds: list[list[float]]  # per exit: [L2 - U1, U2 - L1], what the rates' gap may be
    min_effect: float
    alpha: float
    drifted: bool
    tested: bool               # False when there were too few samples to say
    drifted_exits: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """The one-line warning (or note) for stderr."""
        obs = "/".join(f"{v * 100:.1f}%" for v in self.observed)
        exp = "/".join(f"{v * 100:.1f}%" for v in self.expected)
        seen = f"observed {obs} on {self.n} samples vs calibrated {exp} on {self.n_calibration} validation samples"
        if not self.tested:
            return f"exit rates {obs} on {self.n} samples: too few to test against the calibration's {exp}"
        test = (f"exact two-sample test on Clopper-Pearson bounds of both counts, minimum effect "
                f"{self.min_effect * 100:g} points, alpha {self.alpha:g} over {len(self.observed)} exits")
        if not self.drifted:
            return f"exit rates match the calibration: {seen}; no exit is shown to differ by more than " \
                   f"{self.min_effect * 100:g} points ({test})"
        gaps = ", ".join(f"exit {k} {self._gap(k)}" for k in self.drifted_exits)
        return (f"warning: exit rates drifted from the calibration: {seen}; {gaps} ({test}); the data has "
                "shifted or this engine's numerics differ: re-run `edgebranchy calibrate ARTIFACT --in-place` on this device")

    def _gap(self, k: int) -> str:
        lo, hi = self.difference_bounds[k]
        d = (self.observed[k] - self.expected[k]) * 100
        return f"{d:+.1f} points (at least {min(abs(lo), abs(hi)) * 100:.1f})"


def exit_rate_drift(counts: Sequence[int], expected: Sequence[float], n_calibration: int,
                    alpha: float = DEFAULT_ALPHA, min_effect: float = DEFAULT_MIN_EFFECT,
                    min_samples: int = MIN_SAMPLES) -> DriftResult:
    """Test exit counts (one per exit) against the fractions calibrated on `n_calibration` samples."""
    c = [int(v) for v in counts]
    e = [float(v) for v in expected]
    if len(c) != len(e):
        raise EdgeBranchyError(f"{len(c)} exit counts but {len(e)} expected fractions")
    if any(v < 0 for v in c) or any(not 0 <= v <= 1 for v in e):
        raise EdgeBranchyError("exit counts must be >= 0 and expected fractions in [0, 1]")
    if not 0.0 <= alpha <= 1.0 or not 0.0 <= min_effect <= 1.0:
        raise EdgeBranchyError(f"alpha and the minimum effect must lie in [0, 1], got {alpha}, {min_effect}")
    n1 = int(n_calibration)
    total = sum(e)
    if total <= 0 or n1 < 1:
        raise EdgeBranchyError("expected exit fractions sum to 0 or come from no sample")
    e = [v / total for v in e]  # rounding in stored records
    n = sum(c)
    obs = [v / n if n else 0.0 for v in c]
    if n < min_samples or alpha == 0.0:  # alpha 0: no alarm is allowed
        return DriftResult(n, n1, obs, e, [[-1.0, 1.0]] * len(c), min_effect, alpha, False, n >= min_samples)
    beta = alpha / (4 * (1 if len(c) == 2 else len(c)))
    b1, b2 = _Binomial(n1) if n1 <= _EXACT_UP_TO else None, _Binomial(n) if n <= _EXACT_UP_TO else None
    bounds, drifted = [], []
    for k, (x2, p1) in enumerate(zip(c, e)):
        x1 = min(n1, max(0, int(round(p1 * n1))))
        l1, u1 = lower_bound(x1, n1, beta, b1), upper_bound(x1, n1, beta, b1)
        l2, u2 = lower_bound(x2, n, beta, b2), upper_bound(x2, n, beta, b2)
        bounds.append([l2 - u1, u2 - l1])
        if l2 - u1 > min_effect or l1 - u2 > min_effect:
            drifted.append(k)
    return DriftResult(n, n1, obs, e, bounds, min_effect, alpha, bool(drifted), True, drifted)


def expected_fractions(manifest: dict) -> tuple[list[float] | None, int | None, str]:
    """The exit fractions the artifact's thresholds were calibrated to give, per segment, the number of
    validation samples they come from, and where from.

    A device calibration applied to the artifact wins over the original one. The
    original record counts model exits; segments map to them through
    `exits[k].model_exit` (side exits fused away at export had fraction 0).
    """
    dev = manifest.get("device_calibration") or {}
    active = dev.get("applied")
    if active and active in (dev.get("records") or {}):
        val = dev["records"][active]["validation"]
        return list(val["exit_fractions"]), val.get("n"), f"device calibration {active}"
    cal = manifest.get("calibration") or {}
    try:
        fr, n = cal["validation"]["exit_fractions"], cal["validation"].get("n")
    except (KeyError, TypeError, AttributeError):
        return None, None, "the artifact records no calibration"
    exits = manifest.get("exits", [])
    idx = [e.get("model_exit", k) for k, e in enumerate(exits)]
    if len(fr) == len(exits) and idx == list(range(len(exits))):
        return list(fr), n, "calibration (validation split)"
    try:
        return [fr[j] for j in idx], n, "calibration (validation split)"
    except (IndexError, TypeError):
        return None, None, "the calibration's exits do not match the artifact's"
