"""From per-result scores to events: onset and offset of each class, as a stream is watched.

A class's event starts when its score reaches ``on`` and ends when it falls below ``off``
(hysteresis: a score hovering at one threshold does not flicker). Events of one class less than
``merge_gap`` seconds apart become one; events shorter than ``min_duration`` are dropped. An event
is final (and emitted) once ``merge_gap`` has passed after its end, or when the stream ends.

    >>> decoder = EventDecoder(["glass", "speech"], EventConfig(on=0.6, off=0.4))
    >>> for t, scores in stream:
    ...     for event in decoder.update(t, scores):
    ...         print(event.to_json())
    >>> decoder.finish(t_end)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass(frozen=True)
class EventConfig:
    """How scores become events (``edgemm run --events``).

    Attributes:
        on: A class's score reaching this starts its event.
        off: Its score falling below this ends the event (at most ``on``).
        min_duration: Seconds: shorter events are dropped.
        merge_gap: Seconds: two events of one class closer than this are one.
    """

    on: float = 0.6
    off: float = 0.4
    min_duration: float = 0.3
    merge_gap: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 < self.off <= self.on <= 1.0:
            raise ValueError(f"events: expected 0 < off <= on <= 1, got on={self.on}, off={self.off}")
        if self.min_duration < 0 or self.merge_gap < 0:
            raise ValueError(f"events: min_duration and merge_gap must be >= 0, got {self.min_duration}, "
                             f"{self.merge_gap}")


@dataclass
class Event:
    """One class present from ``start`` to ``end`` (seconds of the stream); ``peak`` is its highest score."""

    label: str
    start: float
    end: float
    peak: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict:
        return {"event": self.label, "start": round(self.start, 3), "end": round(self.end, 3),
                "duration": round(self.duration, 3), "peak": round(self.peak, 4)}

    def line(self) -> str:
        return f"event: {self.label} {self.start:.2f}-{self.end:.2f} s (peak {self.peak:.2f})"


@dataclass
class _Track:
    active: Event | None = None  # open: its end moves with the stream
    closed: Event | None = None  # ended, waiting merge_gap for a continuation
    queue: list[Event] = field(default_factory=list)


class EventDecoder:
    """Turns ``(t, scores)`` in time order into final ``Event`` objects (see the module docstring)."""

    def __init__(self, labels: Sequence[str], config: EventConfig = EventConfig()) -> None:
        self.config = config
        self._tracks = {label: _Track() for label in labels}

    def update(self, t: float, scores: Mapping[str, float]) -> list[Event]:
        """Feeds one result; returns the events that became final at ``t``, oldest first."""
        cfg, out = self.config, []
        for label, track in self._tracks.items():
            score = float(scores.get(label, 0.0))
            if track.active is not None:
                if score < cfg.off:
                    track.active.end = t
                    track.closed, track.active = track.active, None
                else:
                    track.active.end = t
                    track.active.peak = max(track.active.peak, score)
            elif score >= cfg.on:
                if track.closed is not None and t - track.closed.end < cfg.merge_gap:
                    track.active, track.closed = track.closed, None  # the same event resumes
                    track.active.end, track.active.peak = t, max(track.active.peak, score)
                else:
                    track.active = Event(label, t, t, score)
            if track.closed is not None and t - track.closed.end >= cfg.merge_gap:
                out += self._emit(track)
        return sorted(out, key=lambda e: e.start)

    def active(self) -> tuple[str, ...]:
        """The classes with an event in progress (not yet ended), in label order."""
        return tuple(label for label, track in self._tracks.items() if track.active is not None)

    def finish(self, t: float) -> list[Event]:
        """Ends the stream at ``t``: every open or waiting event becomes final."""
        out = []
        for track in self._tracks.values():
            if track.active is not None:
                track.active.end = max(track.active.end, t)
                track.closed, track.active = track.active, None
            out += self._emit(track)
        return sorted(out, key=lambda e: e.start)

    def _emit(self, track: _Track) -> list[Event]:
        event, track.closed = track.closed, None
        return [event] if event is not None and event.duration >= self.config.min_duration else []
