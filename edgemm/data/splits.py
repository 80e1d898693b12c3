"""Deterministic, stratified train/val/test assignment."""

from __future__ import annotations

import enum
import hashlib
from collections import defaultdict
from typing import Sequence


class Split(str, enum.Enum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


def parse_split(value: str) -> Split:
    """Parses a split name, rejecting anything but train/val/test."""
    try:
        return Split(value.strip().lower())
    except ValueError:
        raise ValueError(f"split {value!r} is not one of {[s.value for s in Split]}") from None


def stratified_split(
    keys: Sequence[str], labels: Sequence[str], *, val: float = 0.1, test: float = 0.1
) -> list[Split]:
    """Assigns each item to a split, per label, from a hash of its key.

    The order inside a label comes from a SHA-1 of the key, so the assignment depends only on the
    items themselves (not on row order or a random seed) and adding items moves few others. Each
    label with at least 3 items gets at least one val and one test item.

    Args:
        keys: A stable identifier per item (e.g. its relative path).
        labels: The label of each item.
        val: Fraction for validation.
        test: Fraction for test.

    Returns:
        The split of each item, in input order.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"split fractions must be in [0, 1) and sum below 1, got val={val}, test={test}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    out = [Split.TRAIN] * len(keys)
    for idx in by_label.values():
        idx.sort(key=lambda i: hashlib.sha1(keys[i].encode()).hexdigest())
        n = len(idx)
        if n < 3:
            continue
        n_test = max(1, round(n * test)) if test > 0 else 0
        n_val = max(1, round(n * val)) if val > 0 else 0
        for i in idx[:n_test]:
            out[i] = Split.TEST
        for i in idx[n_test : n_test + n_val]:
            out[i] = Split.VAL
    return out
