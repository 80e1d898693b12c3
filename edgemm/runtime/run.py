"""``edgemm run``: open the sources and sinks asked for and run the pipeline on a bundle."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from edgemm.errors import UsageError
from edgemm.runtime.events import EventConfig
from edgemm.runtime.pipeline import Pipeline, RunConfig, Summary
from edgemm.runtime.session import Session
from edgemm.runtime.sources import SourceKind, open_source


@dataclass(frozen=True)
class Inputs:
    """Which media to read.

    Args:
        camera: Camera index, device path, URL or GStreamer pipeline.
        mic: Microphone index or name substring (``"default"`` for the default input).
        video: A video file (frames, and its audio track unless ``audio_file`` or ``mic`` is given).
        audio_file: Audio from this file instead of the video's track.
        realtime: Pace a video file in real time (like a live camera) instead of as fast as possible.
        no_audio: Run without audio even if the video has a track.
        mic_rate: Rate to open the microphone at (None: its default); resampled to the model's rate.
    """

    camera: str | None = None
    mic: str | None = None
    video: Path | None = None
    audio_file: Path | None = None
    realtime: bool = False
    no_audio: bool = False
    mic_rate: int | None = None

    def __post_init__(self) -> None:
        if self.camera is not None and self.video is not None:
            raise UsageError("give --camera or --video, not both")
        if self.audio_file is not None and self.video is None:
            raise UsageError("--audio-file goes with --video")
        if self.audio_file is not None and self.mic is not None:
            raise UsageError("give --mic or --audio-file, not both")
        if self.camera is None and self.video is None and self.mic is None:
            raise UsageError("nothing to read: give --camera, --mic and/or --video")


def live_threads() -> int:
    """Inference threads for a live run when none are given: every core this process may use but one,
    which is left to capture and decoding. Measured on 2 cores, video pipeline against decoding then
    inferring in one thread: with both cores for inference 0.5× (onnxruntime, whose idle workers
    spin) and 0.7× (OpenVINO); with one, 1.1-1.3× on all three backends."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def open_sources(inputs: Inputs, sample_rate: int, stack: contextlib.ExitStack) -> list:
    """Enters the sources ``inputs`` describes on ``stack``."""
    sources = []
    if inputs.video is not None:
        own_audio = inputs.mic is None and not inputs.no_audio
        sources.append(stack.enter_context(open_source(
            SourceKind.VIDEO, inputs.video, sample_rate, audio_file=inputs.audio_file,
            realtime=inputs.realtime, audio=own_audio)))
    if inputs.camera is not None:
        sources.append(stack.enter_context(open_source(SourceKind.CAMERA, inputs.camera)))
    if inputs.mic is not None:
        sources.append(stack.enter_context(open_source(SourceKind.MICROPHONE, inputs.mic, sample_rate=sample_rate,
                                                             device_rate=inputs.mic_rate)))
    return sources


@contextlib.contextmanager
def stop_on_signals(stop, log):
    """While inside: SIGINT (Ctrl-C) and SIGTERM (``kill``, systemd, ``docker stop``) stop the run the
    clean way (sinks closed, a recording finished and kept, the summary printed); a second signal
    interrupts at once. Without this SIGTERM killed the process and lost the recording."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        log(f"{signal.Signals(signum).name}: stopping (send it again to interrupt at once)")
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(session: Session, inputs: Inputs, config: RunConfig = RunConfig(), *, as_json: bool = False,
        show: bool = False, save: Path | None = None, preview: str | None = None, metrics: str | None = None,
        events: EventConfig | None = None, telemetry_every: float | None = None, quiet: bool = False,
        log=lambda s: print(s, file=sys.stderr, flush=True)) -> Summary:
    """Runs ``session`` on live or recorded media until it ends, ``config``'s limits, or Ctrl-C.

    Args:
        session: A loaded bundle (``edgemm.runtime.load``).
        inputs: What to read.
        config: Smoothing, threshold, liveness, limits.
        as_json: One JSON object per result on stdout instead of a text line; on a file, a last
            line ``{"summary": ...}`` whose ``clip`` is the answer for the whole file.
        show: An OpenCV window.
        save: Write the annotated stream with its audio to this video file.
        preview: ``HOST:PORT`` for the web preview (host defaults to 127.0.0.1).
        metrics: ``HOST:PORT`` for the live Prometheus metrics (``edgemm.runtime.telemetry``).
        telemetry_every: Print the run's counters as a ``{"telemetry": ...}`` JSON line this often (s).
        events: Print each class's onset/offset events as they become final (``edgemm.runtime.events``);
            printed even when ``quiet``.
        quiet: No per-result output.
        log: Where status lines go (stderr).

    Returns:
        The run's summary (also logged).
    """
    from edgemm.runtime.card import card_line
    from edgemm.runtime.sinks.console import ConsoleSink

    sample_rate = session.preprocess.audio.sample_rate
    with contextlib.ExitStack() as stack:
        sources = open_sources(inputs, sample_rate, stack)
        sinks = [] if quiet else [ConsoleSink(as_json=as_json)]
        pipeline = Pipeline(session, sources, config, sinks)
        log(f"model: {card_line(session.manifest)}")  # once the inputs opened: a bad one is a one-line error
        try:
            if events is not None:
                from edgemm.runtime.sinks.events import EventSink

                # First: it marks each result's events in progress before the sinks that draw them.
                pipeline.sinks.insert(0, EventSink(session.labels, events, as_json=as_json))
            if show:
                from edgemm.runtime.sinks.display import DisplaySink

                pipeline.sinks.append(DisplaySink(on_quit=pipeline.stop))
            if save is not None:
                from edgemm.runtime.sinks.recorder import RecorderSink

                # a file read as fast as possible is recorded whole; a live stream keeps real time
                pipeline.sinks.append(RecorderSink(save, sample_rate, audio=pipeline.sync.audio,
                                                   lossless=not pipeline.live))
            if preview is not None:
                from edgemm.runtime.sinks.preview import PreviewSink, parse_address

                sink = PreviewSink(*parse_address(preview), telemetry=pipeline.snapshot)
                pipeline.sinks.append(sink)
                log(f"preview: {sink.url}")
            if metrics is not None:
                from edgemm.runtime.sinks.preview import parse_address
                from edgemm.runtime.telemetry import MetricsServer

                server = MetricsServer(pipeline.snapshot, *parse_address(metrics, flag="--metrics"))
                stack.callback(server.close)
                log(f"metrics: {server.url}")
            if telemetry_every is not None:
                from edgemm.runtime.telemetry import TelemetryPrinter

                stack.callback(TelemetryPrinter(pipeline.snapshot, telemetry_every).close)
        except BaseException:
            for sink in pipeline.sinks:
                sink.close()
            raise
        with stop_on_signals(pipeline.stop, log):
            summary = pipeline.run()
    if as_json and summary.clip is not None:  # a file: its one answer is the last line
        print(json.dumps({"summary": summary.to_json()}), flush=True)
    log(f"summary: {summary.line()}")
    return summary
