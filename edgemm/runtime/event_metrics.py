"""Event metrics as the DCASE sound-event-detection challenges define them (Mesaros et al., 2016):
how well the events a run found match annotated ones.

- **Event-based**: an estimated event is right when a reference event of the same class starts
  within ``t_collar`` of it and ends within ``max(t_collar, length_pct × its duration)``; each
  reference event matches at most one estimate (a maximum matching, per class). F1, precision and
  recall from the matched (TP), unmatched estimated (FP) and unmatched reference (FN) counts,
  overall (micro) and per class.
- **Segment-based**: the stream cut into ``segment``-second pieces; in each, a class is active when
  any of its events overlaps it. TP / FP / FN count (segment, class) pairs.

Annotations are read from the DCASE text format: one event per row, ``onset``, ``offset`` and
``event_label`` columns (tab- or comma-separated, with that header; a ``filename`` column is
allowed and ignored).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from edgemm.errors import EdgemmError
from edgemm.runtime.events import Event

T_COLLAR = 0.2
LENGTH_PCT = 0.2
SEGMENT = 1.0


class AnnotationError(EdgemmError, ValueError):
    """An annotation file that does not say what it must (names the file and row)."""


def read_annotations(path: str | Path) -> list[Event]:
    """The reference events of a DCASE-style annotation file.

    Raises:
        AnnotationError: A missing column, a value that is not a number, an offset before its onset.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    dialect = "excel-tab" if "\t" in text.splitlines()[0] else "excel"
    rows = csv.DictReader(text.splitlines(), dialect=dialect)
    missing = {"onset", "offset", "event_label"} - set(rows.fieldnames or [])
    if missing:
        raise AnnotationError(f"{path}: expected columns onset, offset, event_label; missing {sorted(missing)}")
    events = []
    for i, row in enumerate(rows, start=2):
        try:
            onset, offset = float(row["onset"]), float(row["offset"])
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}, row {i}: onset and offset must be numbers of seconds, got "
                                  f"{row['onset']!r}, {row['offset']!r}") from None
        if not (math.isfinite(onset) and math.isfinite(offset)) or offset <= onset or onset < 0:
            raise AnnotationError(f"{path}, row {i}: expected 0 <= onset < offset, got {onset}, {offset}")
        label = (row["event_label"] or "").strip()
        if not label:
            raise AnnotationError(f"{path}, row {i}: event_label is empty")
        events.append(Event(label, onset, offset, 1.0))
    return events


def _scores(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    return {"tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0, "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0}


def event_based(reference: Sequence[Event], estimated: Sequence[Event], t_collar: float = T_COLLAR,
                length_pct: float = LENGTH_PCT) -> dict:
    """Event-based F1 (onset and offset both within their collar), overall and per class.

    Raises:
        UsageError: Without scipy (its assignment solver finds the matching).
    """
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        from edgemm.errors import UsageError

        raise UsageError("event metrics need scipy: pip install scipy") from None

    per_class, total = {}, [0, 0, 0]
    for label in sorted({e.label for e in reference} | {e.label for e in estimated}):
        ref = [e for e in reference if e.label == label]
        est = [e for e in estimated if e.label == label]
        hit = np.array([[abs(r.start - s.start) <= t_collar
                         and abs(r.end - s.end) <= max(t_collar, length_pct * r.duration) for s in est] for r in ref],
                       dtype=float).reshape(len(ref), len(est))
        rows, cols = linear_sum_assignment(hit, maximize=True)  # the most one-to-one matches
        tp = int(hit[rows, cols].sum())
        counts = (tp, len(est) - tp, len(ref) - tp)
        per_class[label] = _scores(*counts)
        total = [a + b for a, b in zip(total, counts)]
    return {"t_collar": t_collar, "length_pct": length_pct, **_scores(*total), "per_class": per_class}


def segment_based(reference: Sequence[Event], estimated: Sequence[Event], duration: float,
                  segment: float = SEGMENT) -> dict:
    """Segment-based F1 over ``segment``-second pieces of a ``duration``-second stream."""
    labels = sorted({e.label for e in reference} | {e.label for e in estimated})
    n = max(1, math.ceil(duration / segment - 1e-9))

    def activity(events: Sequence[Event]) -> np.ndarray:
        active = np.zeros((n, len(labels)), bool)
        for e in events:
            first, last = int(e.start // segment), min(n - 1, math.ceil(e.end / segment - 1e-9) - 1)
            active[first:last + 1, labels.index(e.label)] = True
        return active

    ref, est = activity(reference), activity(estimated)
    return {"segment": segment, "segments": n,
            **_scores(int((ref & est).sum()), int((est & ~ref).sum()), int((ref & ~est).sum()))}


def label_at(reference: Sequence[Event], t: float) -> str | None:
    """The annotated class at time ``t`` (None: nothing annotated then; the first when several)."""
    return next((e.label for e in reference if e.start <= t < e.end), None)
