"""Keeping camera frames and microphone audio in time with each other.

Sources push timestamped packets (``Frame``, ``AudioChunk``) into a ``Sync``; the inference loop asks
it for the next ``Sample``: the newest frame and the audio window that *ends* at that frame's
timestamp — the same window ``edgemm.data.preprocess.window_at`` cuts for training, so a live
sample looks like a training sample. Older frames are dropped (latest-frame policy) and counted.

Audio lives in an ``AudioRing``: samples addressed by their absolute index on the media time axis,
so the window for a given time does not depend on how the audio arrived (chunk sizes, timing).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from edgemm.errors import EdgemmError


class StreamError(EdgemmError, ValueError):
    """A packet that breaks the stream's contract (time going backwards, wrong sample rate)."""


@dataclass
class Frame:
    """One RGB uint8 frame (H, W, 3) at media time ``t`` seconds.

    ``captured_ns`` is the ``perf_counter_ns`` at capture; latency is measured from it.
    """

    t: float
    image: np.ndarray
    captured_ns: int = field(default_factory=time.perf_counter_ns)


@dataclass
class AudioChunk:
    """Mono float32 samples at ``sample_rate``; ``t`` is the media time of the first sample, or
    ``None`` when the chunk directly follows the previous one (a continuous capture).

    ``resync`` marks a ``t`` that corrects the stream's clock (a sound card whose sample clock runs
    a little fast or slow against the camera's): the buffer moves its time axis to it instead of
    inserting silence or refusing time that went back.
    """

    samples: np.ndarray
    sample_rate: int
    t: float | None = None
    captured_ns: int = field(default_factory=time.perf_counter_ns)
    resync: bool = False


@dataclass
class Sample:
    """What one inference sees: a frame (or none) and the audio window ending at ``t`` (or none)."""

    t: float
    image: np.ndarray | None
    audio: np.ndarray | None
    captured_ns: int
    audio_start: int | None = None  # stream index of the window's first sample
    audio_captured_ns: int | None = None  # capture time of the chunk holding the window's last sample
    av_skew_ms: float | None = None  # newest audio's time minus the frame's when they were paired


class AudioRing:
    """A bounded, lock-protected buffer of mono samples placed on the media time axis.

    Args:
        sample_rate: The only rate accepted; a chunk at another rate is an error.
        seconds: How much audio is kept; older samples read as zeros.
        tolerance: Timestamp jitter (s) absorbed without inserting silence or raising.
    """

    def __init__(self, sample_rate: int, seconds: float = 10.0, tolerance: float = 0.02) -> None:
        self.sample_rate = sample_rate
        self._buf = np.zeros(max(int(seconds * sample_rate), 1), np.float32)
        self._tol = int(round(tolerance * sample_rate))
        self._lock = threading.Lock()
        self.t0: float | None = None  # media time of sample index 0
        self.end = 0  # absolute index one past the newest sample
        self.gaps = 0  # times silence was inserted for missing audio
        self.resyncs = 0  # times the time axis was moved to follow the source's clock
        # (stream index one past a chunk's last sample, its capture time), newest last
        self._stamps: collections.deque[tuple[int, int]] = collections.deque(maxlen=1024)
        self._first: tuple[int, int] | None = None  # (samples counted, capture ns) after the first chunk
        self._counted = 0  # samples the source delivered (inserted silence excluded)

    def write(self, chunk: AudioChunk) -> None:
        """Appends a chunk.

        Raises:
            StreamError: If the chunk's rate differs, or its timestamp lies before audio already
                written (time going backwards).
        """
        if chunk.sample_rate != self.sample_rate:
            raise StreamError(f"audio chunk at {chunk.sample_rate} Hz; this stream runs at {self.sample_rate} Hz "
                              "(resample it before it reaches the buffer)")
        x = np.asarray(chunk.samples, np.float32).reshape(-1)
        with self._lock:
            if self.t0 is None:
                self.t0 = 0.0 if chunk.t is None else float(chunk.t)
            elif chunk.t is not None and chunk.resync:
                self.t0 = float(chunk.t) - self.end / self.sample_rate
                self.resyncs += 1
            elif chunk.t is not None:
                at = int(round((chunk.t - self.t0) * self.sample_rate))
                if at < self.end - self._tol:
                    raise StreamError(f"audio timestamp went backwards: chunk at t={chunk.t:.4f} s, "
                                      f"but audio up to t={self.end_time_locked():.4f} s is already buffered")
                if at > self.end + self._tol:  # a dropout: keep later audio at its true time
                    self._put(np.zeros(at - self.end, np.float32))
                    self.gaps += 1
            self._put(x)
            self._counted += len(x)
            self._stamps.append((self.end, chunk.captured_ns))
            if self._first is None:
                self._first = (self._counted, chunk.captured_ns)

    def captured_ns(self, index: int) -> int | None:
        """When the chunk holding stream sample ``index - 1`` was captured (None: not buffered)."""
        found = None
        with self._lock:
            for end, ns in reversed(self._stamps):  # a window ends near the newest chunk: a few steps
                if end < index:
                    break
                found = ns  # this chunk ends at or after the sample; an older one may hold it
        return found

    def drift_ppm(self, min_seconds: float = 10.0) -> float | None:
        """How fast the source's sample clock runs against this machine's, in parts per million
        (samples delivered / sample rate vs capture times, from the first chunk to the newest);
        None until ``min_seconds`` have passed (capture jitter dominates a shorter span)."""
        with self._lock:
            if self._first is None:
                return None
            wall = (self._stamps[-1][1] - self._first[1]) / 1e9
            if wall < min_seconds:
                return None
            audio = (self._counted - self._first[0]) / self.sample_rate
            return (audio - wall) / wall * 1e6

    def _put(self, x: np.ndarray) -> None:
        n = len(self._buf)
        if len(x) > n:  # only the newest n samples survive
            self.end += len(x) - n
            x = x[-n:]
        i = self.end % n
        first = min(len(x), n - i)  # up to the end of the buffer, then the rest from its start
        self._buf[i:i + first] = x[:first]
        self._buf[:len(x) - first] = x[first:]
        self.end += len(x)

    def end_time_locked(self) -> float:
        return (self.t0 or 0.0) + self.end / self.sample_rate

    @property
    def end_time(self) -> float | None:
        """Media time just after the newest sample (``None`` before any audio)."""
        with self._lock:
            return None if self.t0 is None else self.end_time_locked()

    def window(self, t: float, n: int) -> np.ndarray:
        """The ``n`` samples ending at media time ``t``; missing or expired samples are zeros."""
        return self.read(t, n)[0]

    def read(self, t: float, n: int, align: int = 1) -> tuple[np.ndarray, int | None]:
        """``window``, ending at the last multiple of ``align`` (a stream index) at or before ``t``,
        and the stream index of its first sample (None before any audio).

        Windows aligned to the frontend's hop start whole hops apart, so a runtime frontend can
        reuse the STFT frames they share (``edgemm.data.logmel.StreamingLogMel``).
        """
        out = np.zeros(n, np.float32)
        with self._lock:
            if self.t0 is None:
                return out, None
            stop = int(round((t - self.t0) * self.sample_rate))
            stop -= stop % align
            start = stop - n
            lo, hi = max(start, self.end - len(self._buf), 0), min(stop, self.end)
            if hi > lo:  # two slices at most (where the ring wraps), not an index array: 16 k samples per result
                i, n = lo % len(self._buf), hi - lo
                first = min(n, len(self._buf) - i)
                out[lo - start:lo - start + first] = self._buf[i:i + first]
                out[lo - start + first:hi - start] = self._buf[:n - first]
        return out, start


class Sync:
    """Pairs frames with audio windows.

    Args:
        sample_rate: The model's audio rate (chunks must already be at it).
        window: Audio window length in samples.
        video: Whether a frame stream feeds it; without one, samples come every ``hop`` seconds
            of audio.
        audio: Whether an audio stream feeds it.
        latest_only: Live policy: keep only the newest frame, count the others as drops. With
            ``False`` (files as fast as possible) every frame is kept and ``put_frame`` blocks
            while ``queue`` frames wait.
        queue: Frames held when not ``latest_only``.
        audio_wait: Longest wait (s) for audio to reach a frame's time before using what is there.
        hop: Seconds between audio-only samples.
        align: Audio windows end on a multiple of this many samples (``AudioRing.read``).
    """

    def __init__(self, sample_rate: int, window: int, *, video: bool = True, audio: bool = True,
                 latest_only: bool = True, queue: int = 4, audio_wait: float | None = 0.25,
                 hop: float = 0.25, align: int = 1) -> None:
        if not (video or audio):
            raise ValueError("Sync needs a video stream, an audio stream, or both")
        self.window, self.video, self.audio = window, video, audio
        self.ring = AudioRing(sample_rate)
        self.latest_only, self.audio_wait, self.hop, self.align = latest_only, audio_wait, hop, align
        self._frames: collections.deque[Frame] = collections.deque(maxlen=1 if latest_only else None)
        self._capacity = 1 if latest_only else max(queue, 1)
        self._cond = threading.Condition()
        self._last_frame_t: float | None = None
        self._next_hop_t: float | None = None
        self._closed = {"video": not video, "audio": not audio}
        self.frames_in = 0
        self.drops = 0

    # -- producers -------------------------------------------------------------------------------
    def put_frame(self, frame: Frame) -> None:
        """Adds a frame.

        Raises:
            StreamError: If its timestamp is not after the previous frame's.
        """
        with self._cond:
            if self._last_frame_t is not None and frame.t <= self._last_frame_t:
                raise StreamError(f"frame timestamp went backwards or repeated: t={frame.t:.4f} s after "
                                  f"t={self._last_frame_t:.4f} s")
            self._last_frame_t = frame.t
            if self.latest_only:
                self.drops += len(self._frames)
            else:
                while len(self._frames) >= self._capacity and not self._closed["video"]:
                    self._cond.wait(0.1)
            self._frames.append(frame)
            self.frames_in += 1
            self._cond.notify_all()

    def put_audio(self, chunk: AudioChunk) -> None:
        """Adds audio (see ``AudioRing.write`` for what is rejected)."""
        self.ring.write(chunk)
        with self._cond:
            self._cond.notify_all()

    def close(self, stream: str) -> None:
        """Marks ``"video"`` or ``"audio"`` finished: waiting on it stops."""
        with self._cond:
            self._closed[stream] = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._closed["video"] and self._closed["audio"] and not self._frames

    # -- consumer --------------------------------------------------------------------------------
    def next(self, timeout: float | None = None) -> Sample | None:
        """The next sample, or ``None`` when every stream is finished (or ``timeout`` passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._next_frame(deadline) if self.video else self._next_hop(deadline)

    def _wait(self, deadline: float | None) -> bool:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def _next_frame(self, deadline: float | None) -> Sample | None:
        with self._cond:
            while not self._frames:
                if self._closed["video"] or not self._wait(deadline):
                    return None
            frame = self._frames.popleft()
            self._cond.notify_all()
            if self.audio:
                audio_deadline = None if self.audio_wait is None else time.monotonic() + self.audio_wait
                while not self._closed["audio"]:
                    end = self.ring.end_time
                    if end is not None and end >= frame.t - 0.5 / self.ring.sample_rate:
                        break
                    if not self._wait(audio_deadline):
                        break
        if not self.audio:
            return Sample(frame.t, frame.image, None, frame.captured_ns)
        end = self.ring.end_time
        audio, start = self.ring.read(frame.t, self.window, self.align)
        if start is None:
            return Sample(frame.t, frame.image, None, frame.captured_ns)
        return Sample(frame.t, frame.image, audio, frame.captured_ns, start,
                      audio_captured_ns=self.ring.captured_ns(start + self.window),
                      av_skew_ms=None if end is None else (end - frame.t) * 1e3)

    def _next_hop(self, deadline: float | None) -> Sample | None:
        with self._cond:
            while True:
                end = self.ring.end_time
                if end is not None:
                    if self._next_hop_t is None:  # first sample once a whole window is there
                        self._next_hop_t = self.ring.t0 + self.window / self.ring.sample_rate
                    if end >= self._next_hop_t - 0.5 / self.ring.sample_rate:
                        behind = int((end - self._next_hop_t) // self.hop)
                        if self.latest_only and behind > 0:  # live: skip to the newest full hop
                            self._next_hop_t += behind * self.hop
                            self.drops += behind
                        break
                if self._closed["audio"] or not self._wait(deadline):
                    return None
            t = self._next_hop_t
            self._next_hop_t += self.hop
        audio, start = self.ring.read(t, self.window, self.align)
        captured = None if start is None else self.ring.captured_ns(start + self.window)
        # Audio alone: latency runs from the capture of the window's last sample.
        return Sample(t, None, audio, captured or time.perf_counter_ns(), start, audio_captured_ns=captured)
