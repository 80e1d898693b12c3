"""``edgemm eval BUNDLE --video LONG.mp4 --events ANNOTATIONS``: the events a bundle finds in a long
recording, scored against annotated ones (``edgemm.runtime.event_metrics``), beside the frame-level
accuracy on the annotated stretches.

The bundle runs on every frame of the file (not paced: as fast as the machine goes) through the
same pipeline, smoothing and event decoder as ``edgemm run --events``, so the figures are those of
the live demo on the same media. Torch-free (scipy for the event matching).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemm.deploy.workflow import ProfileArg, open_session
from edgemm.runtime.event_metrics import event_based, label_at, read_annotations, segment_based
from edgemm.runtime.events import Event, EventConfig


@dataclass
class EventEvaluation:
    """What ``evaluate_events`` found and how it scores."""

    video: str
    annotations: str
    reference: list[Event]
    found: list[Event]
    event_based: dict[str, Any]
    segment_based: dict[str, Any]
    frames: int  # results on annotated stretches
    frame_accuracy: float  # of those, the share whose (smoothed) label is the annotated one
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"video": self.video, "annotations": self.annotations, "events_config": self.config,
                "reference": [e.to_json() for e in self.reference], "found": [e.to_json() for e in self.found],
                "event_based": self.event_based, "segment_based": self.segment_based,
                "frame_level": {"n": self.frames, "accuracy": self.frame_accuracy}}

    def lines(self) -> list[str]:
        e, s = self.event_based, self.segment_based
        return [f"{len(self.found)} events found, {len(self.reference)} annotated ({self.video})",
                f"  event-based F1 {e['f1']:.3f} (precision {e['precision']:.3f}, recall {e['recall']:.3f}; "
                f"onset collar {e['t_collar']:g} s, offset max({e['t_collar']:g} s, {e['length_pct']:.0%}))",
                f"  segment-based F1 {s['f1']:.3f} ({s['segment']:g} s segments: {s['segments']})",
                f"  frame-level accuracy {self.frame_accuracy:.3f} on {self.frames} results inside annotated events"]


class _Labels:
    """A sink that keeps each result's time and (smoothed) label."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None]] = []

    def put(self, result) -> None:
        self.seen.append((result.t, result.label))

    def close(self) -> None:
        pass


def evaluate_events(bundle: str | Path, video: str | Path, annotations: str | Path, *,
                    events: EventConfig | None = None, smooth: int = 1, device_profile: ProfileArg = None,
                    backend: str | None = None, provider: str | None = None,
                    threads: int | None = None) -> EventEvaluation:
    """Runs ``bundle`` over ``video`` and scores its events against ``annotations``.

    Raises:
        AnnotationError: The annotation file is malformed (file and row named).
    """
    from edgemm.runtime.pipeline import Pipeline, RunConfig
    from edgemm.runtime.run import Inputs, open_sources
    from edgemm.runtime.sinks.events import EventSink

    events = events or EventConfig()
    reference = read_annotations(annotations)
    session = open_session(bundle, device_profile, backend=backend, provider=provider, threads=threads)
    sink = EventSink(session.labels, events, stream=io.StringIO())
    labels = _Labels()
    with contextlib.ExitStack() as stack:
        sources = open_sources(Inputs(video=Path(video)), session.preprocess.audio.sample_rate, stack)
        Pipeline(session, sources, RunConfig(smooth=smooth), [sink, labels]).run()
    inside = [(t, label, label_at(reference, t)) for t, label in labels.seen if label_at(reference, t) is not None]
    duration = max([t for t, _ in labels.seen[-1:]] + [e.end for e in reference + sink.events])
    return EventEvaluation(
        str(video), str(annotations), reference, sink.events, event_based(reference, sink.events),
        segment_based(reference, sink.events, duration), len(inside),
        sum(got == want for _, got, want in inside) / len(inside) if inside else 0.0,
        {"on": events.on, "off": events.off, "min_duration": events.min_duration, "merge_gap": events.merge_gap,
         "smooth": smooth})
