"""What the runner answers: `Prediction` per batch, and the buffer it is filled in exit by exit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Per-sample answer: label, the exit that answered, its entropy (and logits on request)."""

    labels: np.ndarray
    exits: np.ndarray
    entropy: np.ndarray
    logits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


class Answers:
    """Per-sample results of one batch, filled exit by exit."""

    __slots__ = ("labels", "exits", "entropy", "logits", "want_logits")

    def __init__(self, n: int, want_logits: bool):
        self.labels = np.empty(n, dtype=np.int64)
        self.exits = np.empty(n, dtype=np.int64)
        self.entropy = np.empty(n, dtype=np.float32)
        self.logits = None
        self.want_logits = want_logits

    def record(self, ids: np.ndarray, k: int, entropy: np.ndarray, logits: np.ndarray) -> None:
        self.labels[ids] = logits.argmax(1)
        self.exits[ids] = k
        self.entropy[ids] = entropy
        if self.want_logits:
            if self.logits is None:
                self.logits = np.empty((len(self.labels), logits.shape[1]), dtype=np.float32)
            self.logits[ids] = logits

    def prediction(self) -> Prediction:
        return Prediction(self.labels, self.exits, self.entropy, self.logits)
