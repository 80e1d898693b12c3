"""Scores become onset/offset events: hysteresis, minimum duration and gap merging on sequences
with known answers, and `edgemm run --events` on a real clip."""

import json

import pytest

from edgemm.runtime.events import EventConfig, EventDecoder

RULES = EventConfig(on=0.6, off=0.4, min_duration=0.3, merge_gap=0.3)


def decode(sequence, config=RULES, step=0.1):
    """Events of one class 'x' whose score at t = k * step is sequence[k]."""
    decoder = EventDecoder(["x", "y"], config)
    events = []
    for k, score in enumerate(sequence):
        events += decoder.update(round(k * step, 3), {"x": score, "y": 1 - score})
    events += decoder.finish(round(len(sequence) * step, 3))
    return [(e.label, e.start, e.end) for e in events if e.label == "x"]


def test_hysteresis_keeps_one_event_through_scores_between_the_thresholds():
    #             0    .1   .2   .3   .4   .5   .6   .7   .8   .9
    assert decode([0.1, 0.7, 0.5, 0.45, 0.55, 0.7, 0.3, 0.1, 0.1, 0.1]) == [("x", 0.1, 0.6)]
    # a score that only reaches 0.55 never starts an event, however long
    assert decode([0.55] * 10) == []


def test_short_events_are_dropped_and_close_ones_merge():
    assert decode([0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]) == []  # 0.2 s < min_duration 0.3 s
    # two bursts 0.2 s apart (< merge_gap 0.3 s) are one event
    assert decode([0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]) == [("x", 0.1, 0.9)]
    # 0.4 s apart: two events
    assert decode([0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]) == [
        ("x", 0.1, 0.4), ("x", 0.8, 1.1)]
    # still on at the end of the stream: closed there
    assert decode([0.1, 0.9, 0.9, 0.9, 0.9]) == [("x", 0.1, 0.5)]


def test_an_event_is_emitted_once_the_merge_gap_has_passed():
    decoder = EventDecoder(["x"], EventConfig(on=0.6, off=0.4, min_duration=0.0, merge_gap=0.3))
    assert decoder.update(0.0, {"x": 0.9}) == [] and decoder.update(0.5, {"x": 0.1}) == []
    assert decoder.update(0.7, {"x": 0.1}) == []  # 0.2 s after the end: could still continue
    (event,) = decoder.update(0.8, {"x": 0.1})
    assert (event.start, event.end, event.peak) == (0.0, 0.5, 0.9)
    assert event.to_json() == {"event": "x", "start": 0.0, "end": 0.5, "duration": 0.5, "peak": 0.9}


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="0 < off <= on <= 1"):
        EventConfig(on=0.3, off=0.5)


def test_run_events_finds_the_class_of_a_real_clip(onnx_bundle, easy_clips, capsys):
    from edgemm.cli import main

    clip = next(iter(easy_clips.values())) if isinstance(easy_clips, dict) else easy_clips[0]
    assert main(["run", str(onnx_bundle), "--video", str(clip), "--json", "--events"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [line for line in lines if "event" in line]
    results = [line for line in lines if "label" in line and "event" not in line and "summary" not in line]
    assert events and results
    top = max(events, key=lambda e: e["duration"])
    majority = max({r["label"] for r in results}, key=[r["label"] for r in results].count)
    assert top["event"] == majority and top["duration"] > 0.5 and top["peak"] >= 0.6


def test_events_in_progress_are_marked_on_each_result_and_drawn_on_the_overlay():
    import io

    import numpy as np

    from edgemm.runtime.pipeline import Result
    from edgemm.runtime.sinks.events import EventSink
    from edgemm.runtime.sinks.overlay import EVENT_BGR, render

    sink = EventSink(["x", "y"], RULES, stream=io.StringIO())

    def result(t, x):
        return Result(t=t, label="x", score=x, scores={"x": x, "y": 0.5 - x / 2}, latency_ms=1.0, stages={},
                      image_present=True, audio_present=True, audio_dbfs=-20.0, raw_label="x",
                      frame=np.zeros((48, 64, 3), np.uint8))

    quiet, loud = result(0.0, 0.3), result(0.1, 0.9)
    sink.put(quiet)
    sink.put(loud)
    assert quiet.events == () and loud.events == ("x",) and loud.to_json()["events"] == ["x"]
    badge = lambda img: int((np.abs(img.astype(int) - EVENT_BGR).sum(-1) < 30).sum())  # noqa: E731
    assert badge(render(loud)) > 1000 and badge(render(quiet)) == 0  # the red EVENT badge, only while it lasts
