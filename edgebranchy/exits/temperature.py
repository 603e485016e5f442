"""Temperature scaling: the T > 0 that makes softmax(logits / T) best calibrated (pure numpy)."""
from __future__ import annotations

import math

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.entropy import log_softmax

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def check_labels(labels: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    """Return `labels` as int64 [n], or raise EdgeBranchyError if they do not fit n samples of n_classes."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise EdgeBranchyError(f"labels must be 1-D with {n} entries (one per sample), got shape {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and n and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        elif n:
            raise EdgeBranchyError(f"labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise EdgeBranchyError(
            f"labels must lie in [0, {n_classes - 1}], found {int(y.min())}..{int(y.max())}")
    return y


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of `labels` under softmax(logits / temperature)."""
    x = np.asarray(logits, dtype=np.float64)
    logp = log_softmax(x / temperature, axis=1)
    return float(-np.mean(logp[np.arange(x.shape[0]), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    bounds: tuple[float, float] = (0.01, 100.0), tol: float = 1e-6) -> float:
    """The temperature in `bounds` that minimises the validation NLL of softmax(logits / T).

    The NLL is convex in 1/T, hence unimodal in log T, so a golden-section
    search on log T finds the global minimum to relative precision `tol`.
    Perfectly separable logits drive T to the lower bound.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise EdgeBranchyError(f"logits must be [samples, classes >= 2], got shape {x.shape}")
    if x.shape[0] == 0:
        raise EdgeBranchyError("fit_temperature needs at least one sample")
    if not np.all(np.isfinite(x)):
        raise EdgeBranchyError("logits contain NaN or inf; cannot fit a temperature")
    y = check_labels(labels, x.shape[0], x.shape[1])
    lo_t, hi_t = (float(b) for b in bounds)
    if not (math.isfinite(lo_t) and math.isfinite(hi_t) and 0.0 < lo_t < hi_t):
        raise EdgeBranchyError(f"temperature bounds must satisfy 0 < low < high, got {bounds!r}")

    def f(log_t: float) -> float:
        return nll(x, y, math.exp(log_t))

    a, b = math.log(lo_t), math.log(hi_t)
    c = b - _GOLDEN * (b - a)
    d = a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    # the ends are candidates too: the optimum may sit on a bound
    best = min((f(a), a), (f(b), b), (fc, c), (fd, d))
    return float(math.exp(best[1]))
