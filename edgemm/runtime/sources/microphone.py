"""A microphone through PortAudio (``sounddevice.InputStream``).

The PortAudio callback only copies each block into a bounded queue (it must never block); the
``packets()`` loop downmixes, resamples from the device's rate to the model's with a streaming
soxr resampler (so chunk boundaries do not change the result), and yields continuous
``AudioChunk``s. The first chunk is stamped on the ``time.perf_counter()`` clock the camera uses,
corrected by PortAudio's reported input latency. Later chunks follow by sample count, and
``ClockFollower`` keeps that count on the camera's clock: a sound card's sample clock runs a little
fast or slow (measured here: 190 ppm, so after 24 minutes frames were paired with audio 270 ms
older than the one planned), and a stalled device resumes after a gap. Overflows (the device
delivered faster than we read) are counted, never fatal.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator

import numpy as np

from edgemm.errors import EdgemmError
from edgemm.runtime.sync import AudioChunk


class MicrophoneError(EdgemmError, RuntimeError):
    """No usable input device; the message lists the ones there are."""


def _sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: the PortAudio library itself is missing
        raise MicrophoneError(f"the microphone needs sounddevice and PortAudio: pip install 'edgemm[mic]' "
                              f"(and on Linux apt install libportaudio2) ({e})") from None
    return sd


def input_devices(refresh: bool = False) -> list[dict[str, Any]]:
    """PortAudio's devices that can record, each with its ``index``.

    Args:
        refresh: Re-initialise PortAudio first. It lists devices once, when it starts: a microphone
            plugged in (or a sound server started) after that stays invisible until it is restarted.
            Only safe while this process has no open stream.
    """
    sd = _sounddevice()
    if refresh:
        sd._terminate()  # sounddevice's documented way to re-scan (python-sounddevice#125)
        sd._initialize()
    return [dict(d, index=i) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def resolve_device(device: int | str | None) -> int | None:
    """An input device index from an index, a name substring, or ``None``/``"default"``.

    Raises:
        MicrophoneError: If nothing matches, listing the input devices.
    """
    if device is None or device == "default":
        return None
    devices = input_devices()
    if not _matching(devices, device):
        devices = input_devices(refresh=True)
    matches = _matching(devices, device)
    if matches:
        return matches[0]["index"]
    listing = "; ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"
    if isinstance(device, int) or str(device).isdigit():
        raise MicrophoneError(f"microphone {device} is not an input device; input devices: {listing}")
    raise MicrophoneError(f"no input device matches {device!r}; input devices: {listing}")


def _matching(devices: list[dict[str, Any]], device: int | str) -> list[dict[str, Any]]:
    if isinstance(device, int) or str(device).isdigit():
        return [d for d in devices if d["index"] == int(device)]
    return [d for d in devices if str(device).lower() in d["name"].lower()]


class MicrophoneSource:
    """Live audio from an input device.

    Args:
        device: Index, name substring, or ``None``/``"default"``.
        sample_rate: The model's rate; chunks come out at it.
        device_rate: Capture rate (default: the device's own default rate).
        block_seconds: PortAudio block length; ``None`` lets the host API choose (measured on
            PulseAudio's ALSA plugin: a fixed 20 ms block delayed the first callback by 1.7 s and
            then delivered 40 % of the audio, a free block size ran at the full rate from 10 ms).
        queue_blocks: Blocks held between the callback and ``packets()`` before blocks are dropped.
        start_timeout: Seconds to wait for the first block before giving up.
    """

    live = True
    streams = frozenset({"audio"})

    def __init__(self, device: int | str | None = None, *, sample_rate: int, device_rate: int | None = None,
                 block_seconds: float | None = None, queue_blocks: int = 512, start_timeout: float = 5.0) -> None:
        self.device_arg, self.sample_rate = device, sample_rate
        self.device_rate, self.block_seconds, self.queue_blocks = device_rate, block_seconds, queue_blocks
        self.start_timeout = start_timeout
        self._stop = threading.Event()
        self.overflows = 0  # blocks PortAudio reported as overflowed, plus blocks our queue dropped
        self.resyncs = 0  # clock corrections (``ClockFollower``)
        self.gaps = 0  # stalls after which the audio resumed later than its sample count said
        self.level_dbfs = -np.inf

    def __enter__(self) -> "MicrophoneSource":
        sd = _sounddevice()
        self.device = resolve_device(self.device_arg)
        info = sd.query_devices(self.device, "input")
        self.device_name = info["name"]
        self.rate = int(self.device_rate or info["default_samplerate"])
        blocksize = max(int(self.rate * self.block_seconds), 1) if self.block_seconds else 0
        self._q: queue.Queue = queue.Queue(maxsize=self.queue_blocks)

        started = threading.Event()

        def callback(indata, frames, time_info, status):
            started.set()
            if status.input_overflow:
                self.overflows += 1
            delay = time_info.currentTime - time_info.inputBufferAdcTime if time_info.inputBufferAdcTime else 0.0
            try:
                self._q.put_nowait((indata.copy(), time.perf_counter() - max(delay, 0.0) - frames / self.rate))
            except queue.Full:
                self.overflows += 1

        try:
            self._stream = sd.InputStream(device=self.device, channels=1, samplerate=self.rate, dtype="float32",
                                          blocksize=blocksize, callback=callback)
            self._stream.start()
        except sd.PortAudioError as e:
            raise MicrophoneError(f"microphone {self.device_name!r} at {self.rate} Hz: cannot start ({e})") from None
        # Return once audio flows: the first PulseAudio stream of a session took 1.7 s to deliver
        # here, and a pipeline started before that would treat the microphone as silent.
        if not started.wait(self.start_timeout):
            self.__exit__()
            raise MicrophoneError(f"microphone {self.device_name!r}: no audio within {self.start_timeout:.0f} s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.stop()
            stream.close()
            self._stream = None

    def stop(self) -> None:
        self._stop.set()

    def packets(self) -> Iterator[AudioChunk]:
        import soxr

        clock = ClockFollower(self.sample_rate)

        resampler = (soxr.ResampleStream(self.rate, self.sample_rate, 1, dtype="float32", quality="HQ")
                     if self.rate != self.sample_rate else None)
        while not self._stop.is_set():
            try:
                block, t = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            x = block[:, 0] if block.ndim == 2 else block
            self.level_dbfs = 20 * np.log10(max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), 1e-10))
            if resampler is not None:
                x = resampler.resample_chunk(x)
            if len(x):
                stamp, resync = clock.stamp(t, len(x))
                self.resyncs, self.gaps = clock.resyncs, clock.gaps
                yield AudioChunk(np.asarray(x, np.float32), self.sample_rate, stamp, resync=resync)


class ClockFollower:
    """Keeps a continuous capture's sample count on the wall clock the camera's frames use.

    Each block's capture time is measured (callback time minus PortAudio's input latency). The
    difference between it and the time the sample count predicts is smoothed over blocks (callback
    jitter is tens of ms); when the smoothed drift passes ``tolerance`` the chunk carries the
    corrected time with ``resync`` (the buffer moves its time axis, no samples lost or invented).
    A jump larger than ``gap`` (the device stalled, then resumed) is a dropout: the chunk carries
    its measured time and the buffer inserts silence for the missing audio.

    Args:
        sample_rate: Rate of the samples counted.
        tolerance: Largest smoothed drift (s) left uncorrected.
        gap: Smallest jump (s) treated as missing audio.
        smoothing: Weight of each new block in the drift average.
    """

    def __init__(self, sample_rate: int, tolerance: float = 0.03, gap: float = 0.25, smoothing: float = 0.05) -> None:
        self.sample_rate, self.tolerance, self.gap, self.smoothing = sample_rate, tolerance, gap, smoothing
        self._anchor: float | None = None
        self._count = 0
        self._drift = 0.0
        self.resyncs = self.gaps = 0

    def stamp(self, measured: float, n: int) -> tuple[float | None, bool]:
        """``(t, resync)`` for a chunk of ``n`` samples whose first was captured at ``measured``."""
        if self._anchor is None:
            self._anchor, self._count = measured, n
            return measured, False
        predicted = self._anchor + self._count / self.sample_rate
        error = measured - predicted
        if error > self.gap:
            self.gaps += 1
            self._anchor, self._count, self._drift = measured, n, 0.0
            return measured, False
        self._drift += self.smoothing * (error - self._drift)
        if abs(self._drift) > self.tolerance:
            corrected = predicted + self._drift
            self.resyncs += 1
            self._anchor, self._count, self._drift = corrected, n, 0.0
            return corrected, True
        self._count += n
        return None, False


SOURCE = MicrophoneSource
