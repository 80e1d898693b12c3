"""A video file with its audio track (or a separate audio file), decoded with PyAV.

Frames carry their presentation time; audio is resampled by PyAV to the model's rate, mono, and
placed on the same time axis by the first audio frame's timestamp — exactly how
``edgemm.data.video.decode_clip`` builds training samples from the same file. A frame is released
only once the audio up to its time has been (or the audio has ended), so a consumer that never
drops frames sees each one with its complete audio window.

``realtime=True`` paces packets by their timestamps (a file standing in for a live camera + mic);
otherwise they come as fast as they decode (evaluation, benchmarks).
"""

from __future__ import annotations

import collections
import heapq
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from edgemm._av import import_av
from edgemm.data.video import rgb_frames
from edgemm.errors import EdgemmError
from edgemm.runtime.sync import AudioChunk, Frame


class VideoFileError(EdgemmError, ValueError):
    """A file that cannot serve as a source; the message names it."""


def _open(path: Path, want: str):
    av = import_av()

    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise VideoFileError(f"{path}: {what}; expected a video file (.mp4, .mkv, .mov, .webm, ...)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoFileError(f"{path}: cannot open ({e})") from None
    streams = container.streams.video if want == "video" else container.streams.audio
    if not streams:
        container.close()
        raise VideoFileError(f"{path}: has no {want} stream")
    return container


class VideoFileSource:
    """Frames and audio of a media file.

    Args:
        path: The video file (any container/codec FFmpeg reads).
        sample_rate: The model's audio rate.
        audio_file: Take the audio from this file instead of ``path``'s audio track.
        realtime: Pace packets by their timestamps.
        audio: Set ``False`` to ignore the audio entirely (video only).
        video: Set ``False`` to read only the audio (audio only).
    """

    live = False

    def __init__(self, path: str | Path, sample_rate: int, *, audio_file: str | Path | None = None,
                 realtime: bool = False, audio: bool = True, video: bool = True) -> None:
        self.path = Path(path)
        self.audio_path = Path(audio_file) if audio_file else (self.path if audio else None)
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.want_video = video
        self.streams = frozenset(({"video"} if video else set()) | ({"audio"} if self.audio_path else set()))
        self._containers: list = []
        self._stop = threading.Event()

    def __enter__(self) -> "VideoFileSource":
        av = import_av()

        self._av = av
        if self.want_video:
            self._video = _open(self.path, "video")
            self._containers.append(self._video)
        if self.audio_path is not None:
            if self.want_video and self.audio_path == self.path:
                if not self._video.streams.audio:
                    self._video.close()
                    raise VideoFileError(f"{self.path}: has no audio track (give --audio-file, or run video only)")
                self._audio = _open(self.path, "audio")  # a second demuxer keeps both streams flowing
            else:
                self._audio = _open(self.audio_path, "audio")
            self._containers.append(self._audio)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for c in self._containers:
            c.close()
        self._containers.clear()

    def stop(self) -> None:
        self._stop.set()

    # Each generator yields (media time, packet) in decode order.
    def _frames(self) -> Iterator[tuple[float, Frame]]:
        for t, rgb in rgb_frames(self._video.decode(video=0)):
            yield t, Frame(t, rgb)

    def _chunks(self) -> Iterator[tuple[float, AudioChunk]]:
        resampler = self._av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        t, first = None, True

        def emit(frames):
            nonlocal t, first
            for o in frames:
                x = o.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                if len(x):
                    yield t, AudioChunk(x, self.sample_rate, t if first else None)
                    first = False
                    t += len(x) / self.sample_rate

        for fr in self._audio.decode(audio=0):
            if t is None:
                t = float(fr.time or 0.0)
            yield from emit(resampler.resample(fr))
        if t is not None:
            yield from emit(resampler.resample(None))

    def packets(self) -> Iterator[Frame | AudioChunk]:
        sources = []
        if self.want_video:
            sources.append(self._frames())
        if self.audio_path is not None:
            sources.append(self._chunks())
        merged = heapq.merge(*sources, key=lambda tp: tp[0]) if len(sources) > 1 else sources[0]
        held: collections.deque[Frame] = collections.deque()
        audio_end = -np.inf if self.audio_path is not None else np.inf
        clock0 = media0 = None
        try:
            for t, packet in merged:
                if self._stop.is_set():
                    return
                if self.realtime:
                    if clock0 is None:
                        clock0, media0 = time.perf_counter(), t
                    delay = clock0 + (t - media0) - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                if isinstance(packet, AudioChunk):
                    yield packet
                    audio_end = t + len(packet.samples) / self.sample_rate
                    while held and held[0].t <= audio_end:
                        yield self._stamp(held.popleft())
                elif packet.t <= audio_end:
                    yield self._stamp(packet)
                else:
                    held.append(packet)
            while held:  # the audio ended before these frames
                yield self._stamp(held.popleft())
        except self._av.error.FFmpegError as e:
            raise VideoFileError(f"{self.path}: decoding failed ({e})") from None

    @staticmethod
    def _stamp(frame: Frame) -> Frame:
        frame.captured_ns = time.perf_counter_ns()  # latency counts from when the frame is released
        return frame


SOURCE = VideoFileSource
