"""Few labels and none: hiding labels of a training split, and keeping only the labelled samples.

A sample without a label has ``label == UNLABELLED`` (-1). Such samples come from a manifest row
with an empty ``label`` cell, a video folder's ``unlabelled/`` directory, or ``with_label_fraction``
(which hides labels to measure what a teacher is worth with few of them). Training from labels
skips them (``labelled_only``); distillation learns from the teacher's answers on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemm.vocab import UNLABELLED


class _View:
    """A training split seen through a label table (same items, same order)."""

    def __init__(self, dataset, labels: np.ndarray, index: np.ndarray | None = None) -> None:
        self.dataset = dataset
        self._labels = labels
        self._index = np.arange(len(dataset)) if index is None else index
        self.labels = dataset.labels
        self.preprocess = getattr(dataset, "preprocess", None)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self._index[i])
        return {**self.dataset[j], "label": int(self._labels[j])}

    def targets(self) -> np.ndarray:
        return self._labels[self._index]

    def clip_ids(self) -> np.ndarray | None:
        fn = getattr(self.dataset, "clip_ids", None)
        return None if fn is None else np.asarray(fn())[self._index]


def targets(dataset) -> np.ndarray:
    """Every sample's label index (``UNLABELLED`` for none)."""
    return np.asarray(dataset.targets(), np.int64)


def count_labelled(dataset) -> int:
    return int((targets(dataset) != UNLABELLED).sum())


def with_label_fraction(dataset, fraction: float, seed: int = 0):
    """The same samples with the labels of all but ``fraction`` of them hidden, per class.

    Samples cut from one clip keep or lose their label together (they are one recording). At least
    one clip or sample per class keeps its label.

    Raises:
        ValueError: ``fraction`` outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"--labels-fraction: expected a fraction in (0, 1], got {fraction!r}")
    y = targets(dataset).copy()
    if fraction == 1:
        return dataset
    clips_fn = getattr(dataset, "clip_ids", None)
    groups = np.asarray(clips_fn()) if clips_fn is not None else np.arange(len(y))
    rng = np.random.default_rng(seed)
    hidden = np.zeros(len(y), bool)
    for c in np.unique(y[y != UNLABELLED]):
        members = np.unique(groups[y == c])
        keep = max(1, round(fraction * len(members)))
        dropped = rng.permutation(members)[keep:]
        hidden |= np.isin(groups, dropped) & (y == c)
    y[hidden] = UNLABELLED
    return _View(dataset, y)


def labelled_only(dataset):
    """The samples that have a label (the dataset itself when all do)."""
    y = targets(dataset)
    keep = np.flatnonzero(y != UNLABELLED)
    if len(keep) == len(y):
        return dataset
    if len(keep) == 0:
        raise ValueError("the training split has no labelled sample")
    if isinstance(dataset, _View):  # index the underlying data set, with the view's labels
        return _View(dataset.dataset, dataset._labels, dataset._index[keep])
    return _View(dataset, y, keep)
