"""``--events``: onset/offset events of each class (``edgemm.runtime.events``) printed as they become final."""

from __future__ import annotations

import json
import sys
from typing import Sequence, TextIO

from edgemm.runtime.events import Event, EventConfig, EventDecoder


class EventSink:
    """Decodes the results' (smoothed) scores into events and prints each final one.

    Args:
        labels: The model's classes.
        config: Thresholds, minimum duration and merge gap (default: ``EventConfig()``).
        as_json: One JSON object per event (``Event.to_json``) instead of a text line.
        stream: Where to print (default stdout).
    """

    def __init__(self, labels: Sequence[str], config: EventConfig | None = None, as_json: bool = False,
                 stream: TextIO | None = None) -> None:
        self.decoder = EventDecoder(labels, config or EventConfig())
        self.as_json, self.stream = as_json, stream or sys.stdout
        self.events: list[Event] = []
        self._last_t = 0.0

    def put(self, result) -> None:
        """Decodes ``result`` and marks it with the events in progress (``Result.events``) for the
        sinks after this one (the window, the recording and the preview draw them)."""
        self._last_t = result.t
        self._print(self.decoder.update(result.t, result.scores))
        result.events = self.decoder.active()

    def close(self) -> None:
        self._print(self.decoder.finish(self._last_t))

    def _print(self, events: list[Event]) -> None:
        for event in events:
            self.events.append(event)
            print(json.dumps(event.to_json()) if self.as_json else event.line(), file=self.stream, flush=True)
