"""``--save out.mp4``: the annotated stream as H.264 with the audio as AAC (PyAV), at true timestamps.

Frames keep their media time (variable frame rate, millisecond time base); the audio track is the
part of each result's audio window not yet written, so it stays continuous and in step with the
picture even when the recorder skips results to keep up.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from edgemm._av import import_av
from edgemm.atomic import require_parent
from edgemm.errors import EdgemmError
from edgemm.runtime.sinks import ThreadedSink
from edgemm.runtime.sinks.overlay import FpsMeter, render


class RecorderError(EdgemmError, OSError):
    """The recording could not be written (a full disk, a removed drive); nothing half-written is kept."""


class RecorderSink(ThreadedSink):
    """Writes results to a video file.

    Args:
        path: Output file (``.mp4``, ``.mkv``, ``.mov``).
        sample_rate: Rate of the results' audio windows (the model's).
        audio: Whether to write an audio track.
        lossless: Write every result (for files read as fast as possible); otherwise the encoder
            skips results it cannot keep up with, as a live run must.
    """

    name = "recorder"

    def __init__(self, path: str | Path, sample_rate: int, audio: bool = True, lossless: bool = False) -> None:
        av = import_av()

        self.path = Path(path)
        if self.path.suffix.lower() not in {".mp4", ".mkv", ".mov"}:
            raise ValueError(f"--save: {self.path}: expected a .mp4, .mkv or .mov file")
        require_parent(self.path, "--save")
        self._av, self.sample_rate, self.with_audio = av, sample_rate, audio
        self._tmp = self.path.with_name(f".{self.path.name}.partial{self.path.suffix}")
        self.container = av.open(str(self._tmp), "w")
        self._video = self._audio = None
        self._t0: float | None = None
        self._last_pts = -1
        self._audio_t = None  # media time up to which audio is written
        self._samples = 0
        self._fps = FpsMeter()
        self.frames = 0
        super().__init__(lossless=lossless)

    def _open_streams(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        self._video = self.container.add_stream("libx264", rate=30)
        self._video.width, self._video.height, self._video.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        self._video.codec_context.time_base = Fraction(1, 1000)
        if self.with_audio:
            self._audio = self.container.add_stream("aac", rate=self.sample_rate, layout="mono")

    def handle(self, result) -> None:
        try:
            self._write(result)
        except OSError as e:  # PyAV raises its own OSError subclasses (ENOSPC, EIO)
            raise RecorderError(f"--save: cannot write {self.path}: {e.strerror or e}; the recording was not "
                                "kept") from None

    def _write(self, result) -> None:
        image = render(result, self._fps.tick())
        if self._video is None:
            self._open_streams(image)
            self._t0 = result.t
        image = image[: self._video.height, : self._video.width]
        pts = int(round((result.t - self._t0) * 1000))
        if pts <= self._last_pts:
            return
        self._last_pts = pts
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self._video.encode(frame):
            self.container.mux(packet)
        self.frames += 1
        if self._audio is not None:
            self._write_audio(result)

    def _write_audio(self, result) -> None:
        window = result.audio if result.audio is not None and result.audio_present else None
        start = self._audio_t if self._audio_t is not None else result.t - (len(window) / self.sample_rate
                                                                            if window is not None else 0.0)
        n = int(round((result.t - start) * self.sample_rate))
        if n <= 0:
            return
        x = np.zeros(n, np.float32)
        if window is not None:
            k = min(n, len(window))
            x[n - k:] = window[len(window) - k:]
        af = self._av.AudioFrame.from_ndarray(x[None], format="fltp", layout="mono")
        af.sample_rate, af.pts = self.sample_rate, self._samples
        self._samples += n
        self._audio_t = result.t
        for packet in self._audio.encode(af):
            self.container.mux(packet)

    def finish(self) -> None:
        if self.error is None:
            try:
                self._publish()
                return
            except OSError as e:
                self._discard()
                raise RecorderError(f"--save: cannot finish {self.path}: {e.strerror or e}; the recording was not "
                                    "kept") from None
        self._discard()  # the recording failed: release it, keep nothing half-written

    def _publish(self) -> None:
        for stream in (self._video, self._audio):
            if stream is not None:
                for packet in stream.encode():
                    self.container.mux(packet)
        self.container.close()
        if self._video is not None:
            self._tmp.replace(self.path)  # complete files only
        else:
            self._tmp.unlink(missing_ok=True)

    def _discard(self) -> None:
        try:
            self.container.close()
        except OSError:
            pass
        self._tmp.unlink(missing_ok=True)
