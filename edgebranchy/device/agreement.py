"""Does a backend give an artifact's answers as ONNX Runtime fp32 does, within what its precision explains?

Pure numpy: `compare(ref, cand, ...)` takes what each backend computed on the same inputs (`Outputs`:
every exit's logits and entropy from the whole chain, and the early-exit runner's answers) and says,
per exit and per sample, whether the differences are rounding or something else. The rule:

- numbers: at exit k, every |candidate logit - reference logit| <= `rtol` x max |reference logit at k|
  and every |candidate entropy - reference entropy| <= `rtol` x H_max (ln C nats, 1 when the artifact
  normalises entropy); both over the whole chain and over the runner's answers. `rtol` is the
  arithmetic's (`RTOL`): 1e-2 for fp16 and TF32 (about 10 x their epsilon 2^-10), 8e-2 for int8 (about 10 x
  one step of a signed 8-bit scale, 2^-7; the exit heads stay fp32), 1e-4 for fp32
  (room for other summation orders and convolution algorithms over a deep network).
- exits: where the two leave at different exits, the first of them, k, is where one saw an entropy
  below T_k and the other did not. Precision explains that only where the reference's entropy lies
  within the band of T_k: |e_ref - T_k| <= min(observed max |delta entropy| at k, the tolerance).
- labels at the same exit: only where the reference's top-2 logit margin <= 2 x min(observed max
  |delta logit| at k, the tolerance) (each of the two logits may move by that much).
Non-finite values are never explained. `passed` is true when every number is within its tolerance
and every differing sample is explained; the doctor exits 1 otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

#: relative tolerance of each arithmetic (see the module docstring)
RTOL = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 1e-2, "int8": 8e-2}
EPSILON = {"fp32": 2.0 ** -23, "tf32": 2.0 ** -10, "fp16": 2.0 ** -10, "int8": 2.0 ** -7}


@dataclass
class Outputs:
    """One backend's results on the N inputs: per exit (whole chain, no early exit) logits [N, C] and
    entropy [N]; the runner's answers (early exit): label, exit, the entropy and logits it answered with."""

    logits: List[np.ndarray]
    entropy: List[np.ndarray]
    labels: np.ndarray
    exits: np.ndarray
    answer_entropy: np.ndarray
    answer_logits: np.ndarray
    baseline: Optional[np.ndarray] = None  # baseline logits [N, C]


def _max(a: np.ndarray) -> float:
    """Largest value (inf if any is not finite, 0 for none)."""
    if a.size == 0:
        return 0.0
    return float(np.max(a)) if np.all(np.isfinite(a)) else math.inf


def _mean(a: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(np.mean(a)) if np.all(np.isfinite(a)) else math.inf


def _band(observed: float, tolerance: float) -> float:
    """The observed largest difference, at most the tolerance (none where the tolerance is not finite)."""
    return min(observed, tolerance) if math.isfinite(tolerance) else 0.0


def _within(diff: float, tolerance: float) -> bool:
    """A finite difference within a finite tolerance (an infinite logit must not make the tolerance infinite)."""
    return math.isfinite(diff) and math.isfinite(tolerance) and diff <= tolerance


def _diff(cand: np.ndarray, ref: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(cand.astype(np.float64) - ref.astype(np.float64))
    return np.where(np.isfinite(d), d, np.inf)


def _exit_numbers(k: int, ref: Outputs, cand: Outputs, rtol: float, entropy_max: float) -> dict:
    """Differences at exit k over the whole chain and the runner's answers at k, with their tolerances."""
    zr, er = ref.logits[k], ref.entropy[k]
    at_k = cand.exits == k  # the candidate's answers at k, against the reference's chain at k
    chain = _diff(cand.logits[k], zr)
    dz = np.concatenate([chain.ravel(), _diff(cand.answer_logits[at_k], zr[at_k]).ravel()])
    de = np.concatenate([_diff(cand.entropy[k], er), _diff(cand.answer_entropy[at_k], er[at_k])])
    scale = _max(np.abs(zr))
    row = {"exit": k, "logit_scale": scale, "max_abs_logit_diff": _max(dz), "mean_abs_logit_diff": _mean(chain),
           "logit_tolerance": rtol * scale, "max_abs_entropy_diff": _max(de),
           "entropy_tolerance": rtol * entropy_max}
    row["logit_band"] = _band(row["max_abs_logit_diff"], row["logit_tolerance"])
    row["entropy_band"] = _band(row["max_abs_entropy_diff"], row["entropy_tolerance"])
    row["within"] = (_within(row["max_abs_logit_diff"], row["logit_tolerance"])
                     and _within(row["max_abs_entropy_diff"], row["entropy_tolerance"]))
    row["identical"] = row["max_abs_logit_diff"] == 0 and row["max_abs_entropy_diff"] == 0
    return row


def _margin(z: np.ndarray) -> float:
    top = np.sort(z.astype(np.float64))[-2:]
    return float(top[1] - top[0]) if len(top) == 2 else math.inf


def _sample(i: int, ref: Outputs, cand: Outputs, thresholds: Sequence[float], rows: List[dict]) -> dict:
    """Why sample i answers differently, and whether precision explains it."""
    er_, ec_ = int(ref.exits[i]), int(cand.exits[i])
    s = {"index": i, "exit_reference": er_, "exit_candidate": ec_, "label_reference": int(ref.labels[i]),
         "label_candidate": int(cand.labels[i])}
    if er_ != ec_:
        k = min(er_, ec_)
        e_ref, t = float(ref.entropy[k][i]), float(thresholds[k])
        dist = abs(e_ref - t) if math.isfinite(e_ref) else math.inf
        band = rows[k]["entropy_band"]
        s.update(kind="exit", at_exit=k, entropy_reference=e_ref, entropy_candidate=float(cand.entropy[k][i]),
                 threshold=t, distance=dist, band=band, explained=dist <= band)
    else:
        margin = _margin(ref.logits[er_][i])
        band = 2 * rows[er_]["logit_band"]
        s.update(kind="label", at_exit=er_, margin=margin, band=band, explained=margin <= band)
    return s


def baseline_numbers(ref: np.ndarray, cand: np.ndarray, rtol: float) -> dict:
    """The baseline graph: logit differences, labels, and label flips the margin rule explains."""
    d = _diff(cand, ref)
    scale = _max(np.abs(ref))
    mx = _max(d)
    band = _band(mx, rtol * scale)
    flips = np.flatnonzero(ref.argmax(1) != cand.argmax(1))
    unexplained = [int(i) for i in flips if not _margin(ref[i]) <= 2 * band]
    return {"logit_scale": scale, "max_abs_logit_diff": mx, "mean_abs_logit_diff": _mean(d),
            "logit_tolerance": rtol * scale, "labels_equal": int(len(ref) - len(flips)), "n": int(len(ref)),
            "label_flips": [int(i) for i in flips], "unexplained": unexplained,
            "within": _within(mx, rtol * scale) and not unexplained}


def compare(ref: Outputs, cand: Outputs, thresholds: Sequence[float], rtol: float, entropy_max: float,
            y: Optional[np.ndarray] = None) -> dict:
    """The agreement of `cand` with `ref` (see the module docstring); `y`: true labels, for accuracies."""
    k_exits = len(ref.logits)
    rows = [_exit_numbers(k, ref, cand, rtol, entropy_max) for k in range(k_exits)]
    for k, t in enumerate(thresholds):
        rows[k]["threshold"] = float(t)
    differ = np.flatnonzero((ref.labels != cand.labels) | (ref.exits != cand.exits))
    samples = [_sample(int(i), ref, cand, thresholds, rows) for i in differ]
    samples.sort(key=lambda s: (s["explained"], s["index"]))  # the unexplained first
    n = len(ref.labels)
    out = {"n": n, "rtol": rtol, "entropy_max": entropy_max, "exits": rows,
           "labels_equal": int(np.sum(ref.labels == cand.labels)), "exits_equal": int(np.sum(ref.exits == cand.exits)),
           "exit_counts": {"reference": np.bincount(ref.exits, minlength=k_exits).tolist(),
                           "candidate": np.bincount(cand.exits, minlength=k_exits).tolist()},
           "samples": samples, "unexplained": sum(not s["explained"] for s in samples),
           "accuracy": None}
    if y is not None:
        out["accuracy"] = {"reference": float(np.mean(ref.labels == y)), "candidate": float(np.mean(cand.labels == y))}
    if ref.baseline is not None and cand.baseline is not None:
        out["baseline"] = baseline_numbers(ref.baseline, cand.baseline, rtol)
    out["passed"] = (all(r["within"] for r in rows) and out["unexplained"] == 0
                     and out.get("baseline", {}).get("within", True))
    return out
