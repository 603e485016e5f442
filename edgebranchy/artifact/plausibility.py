"""Set-ups that make a speedup headline meaningless, said before the speedup.

A backbone that was never trained (or a checkpoint whose backbone weights did not load) still runs, still
exits early and still gets a large "speedup": its main exit answers near chance, its side exits (trained on
top of it) beat it, and branchy looks far more accurate than its own baseline. Three checks, each a sentence:

- near chance: the baseline or the final exit has less than NEAR_CHANCE of the skill between chance and
  perfect ((accuracy - chance) / (1 - chance) < 0.15; chance is the larger of 1 / classes and the most
  frequent class's share of the samples measured): 33% on 4 classes is near chance, 88% on 10 is not;
- a side exit more accurate than the final exit by more than SIDE_BEATS_FINAL_POINTS on the validation split
  (what training recorded per exit): calibration measures the allowed drop from the final exit (or the
  baseline), so with a broken final exit it accepts side-exit answers far below what the side exit offers;
- branchy more accurate than its baseline by more than UNTRAINED_GAIN_POINTS, the whole 95% interval above it.

Pure Python (numpy for the labels only): bench records the context, the verdict, predict and calibrate warn.
"""
from __future__ import annotations

from typing import Any, Sequence

NEAR_CHANCE = 0.15
SIDE_BEATS_FINAL_POINTS = 2.0
UNTRAINED_GAIN_POINTS = 10.0


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%"


def chance_level(num_classes: int, labels: Any = None) -> float:
    """The accuracy of a model that knows nothing: 1 / classes, or the most frequent label's share if higher."""
    chance = 1.0 / max(1, int(num_classes))
    if labels is not None and len(labels):
        import numpy as np

        counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel())
        chance = max(chance, float(counts.max()) / float(counts.sum()))
    return chance


def accuracy_context(manifest: dict, labels: Any) -> dict:
    """What a run records so its verdict can tell a broken model: classes, chance on the samples measured, and
    each exit's validation accuracy as training recorded it (the artifact's manifest; null where unknown)."""
    classes = len(manifest.get("classes") or [])
    return {"classes": classes, "chance": chance_level(classes, labels),
            "exit_accuracy": [e.get("val_accuracy") for e in manifest.get("exits", [])],
            "exit_accuracy_split": "validation"}


def near_chance(accuracy: float, chance: float) -> bool:
    """Less than NEAR_CHANCE of the way from chance to a perfect score."""
    return chance < 1.0 and (accuracy - chance) / (1.0 - chance) < NEAR_CHANCE


def side_beats_final(exit_accuracy: Sequence[float | None]) -> tuple[int, float, float] | None:
    """(side exit, its accuracy, the final exit's) when a side exit beats the final exit by more than
    SIDE_BEATS_FINAL_POINTS; None otherwise or when the accuracies are unknown."""
    acc = list(exit_accuracy or [])
    if len(acc) < 2 or acc[-1] is None:
        return None
    sides = [(a, k) for k, a in enumerate(acc[:-1]) if a is not None]
    if not sides:
        return None
    best, k = max(sides)
    if 100 * (best - acc[-1]) > SIDE_BEATS_FINAL_POINTS:
        return k, float(best), float(acc[-1])
    return None


def side_exit_sentence(found: tuple[int, float, float], split: str, reference: str = "final-exit",
                       reference_accuracy: float | None = None) -> str:
    """What a side exit beating the final exit means, for the verdict and for calibrate."""
    k, side, final = found
    ref = "the baseline" if reference == "baseline" else "the final exit"
    ref_acc = final if reference_accuracy is None else reference_accuracy
    return (f"exit {k} is more accurate than the final exit ({_pct(side)} vs {_pct(final)} on the {split} "
            f"split): the final exit looks untrained or mis-loaded; calibration measures the allowed accuracy drop "
            f"from {ref} ({_pct(ref_acc)}), so it accepts thresholds far below the {_pct(side)} that exit {k} "
            "offers; check the checkpoint's backbone weights before trusting any gain")


def setup_problems(context: dict | None, baseline_accuracy: float, final_accuracy: float | None = None,
                   difference: dict | None = None) -> list[str]:
    """The sentences (no 'warning: ' prefix) that make this run's headline meaningless, worst first.

    `context` is a run's `accuracy_context` (None: only the accuracy change is checked); `final_accuracy` the
    final exit's accuracy if known (default: the context's validation figure); `difference` the paired accuracy difference
    (`artifact.gains.accuracy_difference`: diff_points, ci95_points, n)."""
    out = []
    ctx = context or {}
    chance, classes = ctx.get("chance"), ctx.get("classes")
    if final_accuracy is None:   # the final exit on the validation split, as training recorded it
        final_accuracy = (ctx.get("exit_accuracy") or [None])[-1]
    if chance is not None:
        for name, acc in (("the baseline", baseline_accuracy), ("the final exit", final_accuracy)):
            if acc is not None and near_chance(acc, chance):
                out.append(f"{name} is near chance ({_pct(acc)} right on {classes} classes, chance {_pct(chance)}): "
                           "the model looks untrained or mis-loaded, so the figures below compare against a broken "
                           "model")
                break
    found = side_beats_final(ctx.get("exit_accuracy") or [])
    if found is not None:
        out.append(side_exit_sentence(found, ctx.get("exit_accuracy_split") or "validation"))
    if difference is not None:
        lo = difference["ci95_points"][0]
        if lo > UNTRAINED_GAIN_POINTS:
            out.append(f"branchy is {difference['diff_points']:+.1f} points more accurate than its baseline (95% "
                       f"interval from {lo:+.1f}): the baseline looks untrained, under-trained or mis-loaded (side "
                       "exits should not beat the main exit by this much), so the speedup is measured against a "
                       "broken baseline")
    return out


def calibration_warning(logits: Sequence[Any], labels: Any, reference: str = "final-exit",
                        reference_accuracy: float | None = None, split: str = "validation") -> str | None:
    """calibrate's warning ('warning: ...') when a side exit beats the final exit on the calibration split;
    `logits` is one [N, classes] array per exit, `reference_accuracy` the baseline's with reference baseline."""
    import numpy as np

    y = np.asarray(labels)
    acc = [float((np.asarray(lg).argmax(1) == y).mean()) for lg in logits]
    found = side_beats_final(acc)
    if found is None:
        return None
    return "warning: " + side_exit_sentence(found, split, reference,
                                            reference_accuracy if reference == "baseline" else None)
