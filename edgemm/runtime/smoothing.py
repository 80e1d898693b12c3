"""Temporal smoothing of live results: an EMA of the scores or a majority vote over the last K labels."""

from __future__ import annotations

import collections
import enum

import numpy as np


def auto_threshold(calibration: dict | None, bundle: object = "this bundle") -> float:
    """``--threshold auto``: the operating point fitted at export (``edgemm.export.calibrate``).

    Raises:
        UsageError: If the bundle carries no calibration.
    """
    from edgemm.errors import UsageError

    if not calibration or "threshold" not in calibration:
        raise UsageError(f"--threshold auto: {bundle} has no calibration (exported without a validation split, or "
                         "with --no-verify); give a number, or export it again")
    return float(calibration["threshold"])


class SmoothMode(str, enum.Enum):
    EMA = "ema"
    MAJORITY = "majority"


class Smoother:
    """Smooths successive score vectors.

    Args:
        labels: Label of each score.
        k: Window: the EMA's span (alpha = 2 / (k + 1)) or the number of votes. ``1`` = off.
        mode: ``ema`` or ``majority``.
        threshold: A top score below it reports ``None`` (nothing confident) instead of a label.

    Example:
        >>> s = Smoother(["a", "b"], k=3)
        >>> s.update(np.array([0.2, 0.8]))
        ('b', 0.8, array([0.2, 0.8]))
    """

    def __init__(self, labels: list[str], k: int = 1, mode: SmoothMode | str = SmoothMode.EMA,
                 threshold: float = 0.0) -> None:
        if k < 1:
            raise ValueError(f"smooth: K must be >= 1, got {k}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        from edgemm.config import parse_enum

        self.labels, self.k, self.mode, self.threshold = list(labels), k, parse_enum(SmoothMode, mode, "smooth mode"), threshold
        self._ema: np.ndarray | None = None
        self._votes: collections.deque[int] = collections.deque(maxlen=k)
        self._scores: collections.deque[np.ndarray] = collections.deque(maxlen=k)

    def update(self, scores: np.ndarray) -> tuple[str | None, float, np.ndarray]:
        """Adds one score vector; returns the smoothed (label or None, score, scores)."""
        scores = np.asarray(scores, np.float64)
        if self.mode is SmoothMode.EMA:
            alpha = 2.0 / (self.k + 1)
            self._ema = scores if self._ema is None else alpha * scores + (1 - alpha) * self._ema
            smoothed = self._ema
            i = int(smoothed.argmax())
        else:
            self._votes.append(int(scores.argmax()))
            self._scores.append(scores)
            counts = np.bincount(np.asarray(self._votes), minlength=len(self.labels))
            best = np.flatnonzero(counts == counts.max())
            smoothed = np.mean(self._scores, axis=0)
            i = int(best[np.argmax(smoothed[best])])  # ties go to the higher mean score
        score = float(smoothed[i])
        return (self.labels[i] if score >= self.threshold else None), score, smoothed
