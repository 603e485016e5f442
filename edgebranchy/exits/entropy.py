"""Softmax entropy of classifier logits, in nats (pure numpy)."""
from __future__ import annotations

import math

import numpy as np

from edgebranchy.errors import EdgeBranchyError


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax along `axis`, as float64.

    A slice holding NaN or +inf comes out NaN; entries at -inf come out -inf.
    """
    x = np.asarray(logits, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        shifted = x - m
        lse = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return shifted - lse


def _as_logits(logits: np.ndarray) -> np.ndarray:
    try:
        x = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise EdgeBranchyError(f"logits must be numeric: {e}") from None
    if x.ndim != 2:
        raise EdgeBranchyError(f"logits must be 2-D [samples, classes], got shape {x.shape}")
    if x.shape[1] < 2:
        raise EdgeBranchyError(f"logits need at least 2 classes, got {x.shape[1]}")
    return x


def check_temperature(temperature: float) -> float:
    """Return `temperature` as a float, or raise EdgeBranchyError unless it is finite and > 0."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise EdgeBranchyError(f"temperature must be a number, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0.0:
        raise EdgeBranchyError(f"temperature must be finite and > 0, got {temperature!r}")
    return t


def entropy(logits: np.ndarray, normalize: bool = False, temperature: float = 1.0) -> np.ndarray:
    """Per-sample entropy of softmax(logits / temperature) for `logits` of shape [N, C].

    Returns float64 [N] in nats, or divided by ln(C) when `normalize` is true
    (then in [0, 1]). A sample whose logits contain NaN or +-inf gets NaN, which
    the exit rule never treats as confident.
    """
    x = _as_logits(logits)
    t = check_temperature(temperature)
    if t != 1.0:
        x = x / t
    bad = ~np.all(np.isfinite(x), axis=1)
    logp = log_softmax(x, axis=1)
    p = np.exp(logp)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0.0, -p * logp, 0.0)
    h = np.sum(terms, axis=1)
    max_h = math.log(x.shape[1])
    # -p*log p >= 0 term by term; clip only the last-ulp rounding above ln C.
    h = np.clip(h, 0.0, max_h)
    if normalize:
        h = h / max_h
    h[bad] = np.nan
    return h
