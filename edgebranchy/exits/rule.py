"""The early-exit rule: leave at the first exit whose entropy is below its threshold.

The runtime and the calibration both use these functions, so that what is
calibrated is exactly what runs. The rule is strict (`entropy < threshold`),
NaN or infinite entropy is never confident, and the last exit always answers.
Calibrated thresholds sit midway between the entropies on either side
(`threshold_between`), never one float step above an entropy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError


def check_threshold(threshold: float, index: int | None = None) -> float:
    """Return `threshold` as a float; raise EdgeBranchyError for NaN or non-numbers."""
    where = "" if index is None else f" {index}"
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise EdgeBranchyError(f"threshold{where} must be a number, got {threshold!r}") from None
    if math.isnan(t):
        raise EdgeBranchyError(f"threshold{where} is NaN")
    return t


def confident(entropy_k: np.ndarray, threshold_k: float) -> np.ndarray:
    """Boolean mask of the samples that exit here: finite entropy strictly below the threshold."""
    t = check_threshold(threshold_k)
    try:
        # float64 so that float32 entropies compare exactly against a float64 threshold
        e = np.asarray(entropy_k, dtype=np.float64)
    except (TypeError, ValueError):
        raise EdgeBranchyError("entropies must be numeric") from None
    with np.errstate(invalid="ignore"):
        return np.isfinite(e) & (e < t)


def confident_one(entropy: float, threshold: float) -> bool:
    """`confident` for one sample and an already checked threshold (the batch-1 fast path)."""
    return math.isfinite(entropy) and entropy < threshold


def _as_matrix(entropies: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(entropies, np.ndarray):
        e = entropies
    else:
        columns = [np.asarray(c) for c in entropies]
        if not columns:
            raise EdgeBranchyError("assign_exits needs the entropies of at least one exit")
        for k, c in enumerate(columns):
            if c.ndim != 1:
                raise EdgeBranchyError(f"entropies of exit {k} must be 1-D, got shape {c.shape}")
            if c.shape[0] != columns[0].shape[0]:
                raise EdgeBranchyError(
                    f"exit {k} has {c.shape[0]} entropies but exit 0 has {columns[0].shape[0]}")
        e = np.stack(columns, axis=1)
    if e.ndim != 2:
        raise EdgeBranchyError(f"entropies must be [samples, exits], got shape {e.shape}")
    try:
        e = np.asarray(e, dtype=np.float64)
    except (TypeError, ValueError):
        raise EdgeBranchyError("entropies must be numeric") from None
    if e.shape[1] < 1:
        raise EdgeBranchyError("assign_exits needs the entropies of at least one exit")
    return e


def assign_exits(entropies: np.ndarray | Sequence[np.ndarray], thresholds: Sequence[float]) -> np.ndarray:
    """Exit index per sample for entropies [N, K] (or a list of K arrays [N]) and K-1 thresholds.

    A sample leaves at the first exit k < K-1 with entropy[:, k] < thresholds[k];
    otherwise at exit K-1. The entropy of the last exit is not consulted.
    """
    e = _as_matrix(entropies)
    k_exits = e.shape[1]
    thresholds = list(thresholds)
    if len(thresholds) != k_exits - 1:
        raise EdgeBranchyError(
            f"{k_exits} exits need {k_exits - 1} thresholds (the last exit always answers), "
            f"got {len(thresholds)}")
    ts = [check_threshold(t, k) for k, t in enumerate(thresholds)]
    exits = np.full(e.shape[0], k_exits - 1, dtype=np.int64)
    undecided = np.ones(e.shape[0], dtype=bool)
    for k, t in enumerate(ts):
        leave = undecided & confident(e[:, k], t)
        exits[leave] = k
        undecided &= ~leave
    return exits


def float32_threshold(threshold: float) -> float:
    """The smallest float32 >= `threshold`: for every float32 entropy e, e < result iff e < threshold.

    What a graph that compares in float32 (the single early-exit graph) must use to
    decide exactly as `confident` does in float64.
    """
    t = check_threshold(threshold)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, which is >= t
        t32 = np.float32(t)
    if float(t32) < t:
        t32 = np.nextafter(t32, np.float32(np.inf))
    return float(t32)


def threshold_between(leaves: float, stays: float | None, ceiling: float) -> float:
    """The threshold that lets entropy `leaves` out and keeps `stays` (> `leaves`) in, midway between them,
    so that a last-bit difference between backends (or FP16) moves no sample across it.

    The result is the float32 value at or just above the midpoint when that is not above `stays`, else
    the float32 just below it when that is above `leaves` (so a float32 graph uses the very value), else
    the float64 midpoint (or `stays` itself for adjacent doubles). `stays` None (every sample leaves):
    1.5 x `ceiling` (the largest entropy there can be: ln C, or 1 normalised; or 1.5 x `leaves` where
    rounding put it above), so every sample leaves whatever its entropy, as 0.0 lets none leave.
    """
    lo = float(leaves)
    if stays is None:
        return float32_threshold(1.5 * max(float(ceiling), lo))
    hi = float(stays)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise EdgeBranchyError(f"no threshold lies between entropies {leaves!r} and {stays!r}")
    mid = lo + (hi - lo) / 2.0
    if not mid > lo:
        return hi
    up = float32_threshold(mid)
    if up <= hi:
        return up
    down = float(np.nextafter(np.float32(up), np.float32(-np.inf)))  # the largest float32 < mid
    return down if down > lo else mid
