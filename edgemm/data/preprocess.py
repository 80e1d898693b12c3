"""The one definition of preprocessing, shared by training and the torch-free runtime.

An image becomes a float32 CHW tensor (centre crop to square, resize, scale to [0, 1], normalise);
audio becomes a float32 mono waveform at the model's sample rate, exactly ``clip_samples`` long.
The log-mel frontend is *not* here: it lives inside the model graph (``edgemm.models.frontend``), so
an exported model takes the raw waveform and training and runtime cannot drift apart.

This module imports numpy, OpenCV and soxr only (never torch).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from edgemm._cv2 import import_cv2
from edgemm.config import check_keys, check_types, parse_enum


class AudioAlign(str, enum.Enum):
    """Where the audio window sits relative to the frame timestamp it goes with."""

    END = "end"  # the window ends at the frame (what a live microphone can give)
    CENTER = "center"  # the window is centred on the frame (offline only)


# Bounds of what a model input can sensibly be, so a typo cannot ask for terabytes.
MAX_IMAGE_SIZE = 2048
MAX_SAMPLE_RATE = 192_000
MAX_CLIP_SECONDS = 60.0
MAX_N_FFT = 65_536
MAX_N_MELS = 512


@dataclass(frozen=True)
class ImageConfig:
    """How a camera frame or image file becomes the model's image input.

    Attributes:
        size: Side of the square input in pixels.
        mean: Per-channel mean subtracted after scaling to [0, 1], in RGB order.
        std: Per-channel standard deviation divided by, in RGB order.
        standardize: The model standardises each image to zero mean and unit variance (over all
            pixels and channels) before its image branch, which removes a camera's exposure,
            contrast and white level. It is an op of the model's graph (``edgemm.models.frontend
            .ImageStandardize``), so every exported runtime applies it exactly as training did;
            this field records that the model does it.
    """

    size: int = 64
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    standardize: bool = False

    def __post_init__(self) -> None:
        check_types(self, "image")
        if not 16 <= self.size <= MAX_IMAGE_SIZE:
            raise ValueError(f"image.size must be a whole number in [16, {MAX_IMAGE_SIZE}], got {self.size!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("image.mean and image.std need three values (R, G, B)")
        if min(self.std) <= 0:
            raise ValueError(f"image.std must be positive, got {self.std}")
        if not isinstance(self.standardize, bool):
            raise ValueError(f"image.standardize must be true or false, got {self.standardize!r}")

    @property
    def layout(self) -> str:
        return "NCHW"

    @property
    def color_order(self) -> str:
        return "RGB"


@dataclass(frozen=True)
class AudioConfig:
    """How a microphone stream or audio file becomes the model's audio input.

    The waveform is what the model takes; the STFT / mel fields configure the in-graph frontend.

    Attributes:
        sample_rate: Rate the model expects, in Hz.
        clip_seconds: Length of the audio window per prediction.
        n_fft: FFT size of the frontend.
        win_length: Hann window length (<= n_fft).
        hop_length: Hop between STFT frames.
        n_mels: Mel bands.
        f_min: Lowest mel band edge in Hz.
        f_max: Highest mel band edge in Hz (<= sample_rate / 2).
        align: Where the window sits relative to a video frame's timestamp.
    """

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0
    align: AudioAlign = AudioAlign.END

    def __post_init__(self) -> None:
        check_types(self, "audio")
        object.__setattr__(self, "align", parse_enum(AudioAlign, self.align, "audio.align"))
        if not 1000 <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"audio.sample_rate must be in [1000, {MAX_SAMPLE_RATE}] Hz, got {self.sample_rate}")
        if not 0 < self.clip_seconds <= MAX_CLIP_SECONDS:
            raise ValueError(f"audio.clip_seconds must be in (0, {MAX_CLIP_SECONDS:g}], got {self.clip_seconds}")
        if not 0 < self.n_fft <= MAX_N_FFT or not 0 < self.n_mels <= MAX_N_MELS:
            raise ValueError(f"audio.n_fft must be in [1, {MAX_N_FFT}] and audio.n_mels in [1, {MAX_N_MELS}], "
                             f"got {self.n_fft}, {self.n_mels}")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"audio.win_length must be in (0, n_fft={self.n_fft}], got {self.win_length}")
        if self.hop_length <= 0:
            raise ValueError(f"audio.hop_length must be positive, got {self.hop_length}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"audio.f_min/f_max must satisfy 0 <= f_min < f_max <= sample_rate/2, "
                f"got {self.f_min}, {self.f_max}"
            )
        if self.clip_samples < self.n_fft:
            raise ValueError("audio.clip_seconds is shorter than one FFT window")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """STFT frames the frontend produces for one clip (no centre padding)."""
        return 1 + (self.clip_samples - self.n_fft) // self.hop_length


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything between a sensor and the model's inputs; travels in checkpoints and bundles.

    Attributes:
        frames: Frames in one sample, each with the audio window that goes with it: 1 for a frame
            model; K for a temporal model, whose inputs gain a time axis, ``image`` (K, 3, S, S) and
            ``audio`` (K, samples), oldest first (training cuts them from ordered video frames, the
            runtime keeps them from the stream).
        frame_stride: Frames from one window frame to the next, at the video's (or camera's) frame
            rate: the window spans ``(frames - 1) * frame_stride + 1`` frames, e.g. K=4 with stride 5 is
            the last second at 15 fps (and, with 1 s audio windows, the last 2 s of sound).
        frame_rate: The frame rate ``frame_stride`` counts at, in frames per second (a temporal
            model trained on a video folder: its clips' rate). Given, a window's frames are the
            ones ``frame_stride / frame_rate`` seconds apart by their timestamps, so a camera at
            another rate sees the same span in seconds; None counts frames as they come.
    """

    image: ImageConfig = field(default_factory=ImageConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    frames: int = 1
    frame_stride: int = 1
    frame_rate: float | None = None

    def __post_init__(self) -> None:
        for name in ("frames", "frame_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
                raise ValueError(f"preprocess.{name}: expected an integer from 1 to 64, got {value!r}")
        rate = self.frame_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.1 <= rate <= 1000):
            raise ValueError(f"preprocess.frame_rate: expected frames per second from 0.1 to 1000 or null, got {rate!r}")

    @property
    def frame_step(self) -> float | None:
        """Seconds from one window frame to the next (None when frames are counted, not timed)."""
        return None if self.frame_rate is None else self.frame_stride / self.frame_rate

    @property
    def window_span(self) -> int:
        """Frames from a window's oldest to its newest, both included."""
        return (self.frames - 1) * self.frame_stride + 1

    def same_inputs(self, other: "PreprocessConfig") -> bool:
        """Whether two models take the same input tensors from the same data (what each does inside
        its own graph, such as ``image.standardize``, may differ)."""
        return (dataclasses.replace(self.image, standardize=False) == dataclasses.replace(other.image, standardize=False)
                and self.audio == other.audio and _window(self) == _window(other))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["audio"]["align"] = self.audio.align.value
        d["image"]["mean"] = list(self.image.mean)
        d["image"]["std"] = list(self.image.std)
        if self.frames == 1:  # a frame model's config reads as it did before temporal models
            del d["frames"], d["frame_stride"]
        if self.frame_rate is None:
            del d["frame_rate"]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "PreprocessConfig":
        """Builds a config from plain data, rejecting unknown keys.

        Raises:
            ValueError: On an unknown key or an invalid value, naming the field.
        """
        data = dict(data or {})
        check_keys(cls, data, "preprocess")
        image = dict(data.get("image") or {})
        audio = dict(data.get("audio") or {})
        check_keys(ImageConfig, image, "preprocess.image")
        check_keys(AudioConfig, audio, "preprocess.audio")
        return cls(image=ImageConfig(**image), audio=AudioConfig(**audio), frames=data.get("frames", 1),
                   frame_stride=data.get("frame_stride", 1), frame_rate=data.get("frame_rate"))


def _window(p: PreprocessConfig) -> tuple[int, int, float | None]:
    return p.frames, p.frame_stride, p.frame_rate


def window_positions(times: np.ndarray | None, count: int, preprocess: PreprocessConfig) -> list[int]:
    """Which of a stream's frames so far make the window ending at its newest, oldest first.

    The one rule training (``edgemm.data.video.frame_window``) and the runtime
    (``edgemm.runtime.window``) both follow. Counted (``preprocess.frame_rate`` None, or no
    timestamps): frames n-(K-1)s, ..., n-s, n of the ``count`` so far. Timed: for each window place,
    the frame nearest (the earlier on a tie) to ``frame_step`` seconds apart back from the newest, so
    a stream at another frame rate covers the same seconds (and one at ``frame_rate`` gets the
    counted frames). Places before the stream's first frame take the first frame.

    Args:
        times: Timestamps in seconds of the frames so far, ascending (None: count).
        count: Frames so far (the newest is ``count - 1``).
        preprocess: The model's preprocessing (``frames``, ``frame_stride``, ``frame_rate``).
    """
    k, newest = preprocess.frames, count - 1
    if preprocess.frame_step is None or times is None:
        return [max(newest - j * preprocess.frame_stride, 0) for j in range(k - 1, -1, -1)]
    if count == 1:
        return [0] * k
    times = np.asarray(times, np.float64)[:count]
    targets = times[newest] - preprocess.frame_step * np.arange(k - 1, -1, -1)
    later = np.clip(np.searchsorted(times, targets), 1, newest)
    earlier = later - 1
    nearer_later = np.abs(times[later] - targets) < np.abs(times[earlier] - targets) - 1e-9
    return [int(i) for i in np.where(nearer_later, later, earlier)]


def preprocess_image(rgb: np.ndarray, cfg: ImageConfig) -> np.ndarray:
    """Turns an RGB uint8 image of any size into the model's normalised CHW float32 input.

    Centre-crops to a square (keeps geometry for 4:3 and 16:9 cameras), resizes with area
    interpolation when shrinking and bilinear when enlarging, scales to [0, 1], normalises.

    Args:
        rgb: HxWx3 uint8 array in RGB order (convert OpenCV's BGR first).
        cfg: Image preprocessing settings.

    Returns:
        A (3, size, size) float32 array.

    Raises:
        ValueError: If the array is not HxWx3 uint8.

    Example:
        >>> x = preprocess_image(np.zeros((480, 640, 3), np.uint8), ImageConfig(size=64))
        >>> x.shape
        (3, 64, 64)
    """
    cv2 = import_cv2()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side != cfg.size:
        interp = cv2.INTER_AREA if side > cfg.size else cv2.INTER_LINEAR
        square = cv2.resize(square, (cfg.size, cfg.size), interpolation=interp)
    x = square.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Downmixes (samples,) or (samples, channels) audio to float32 mono by averaging channels."""
    wave = np.asarray(wave)
    if wave.dtype.kind in "iu":
        # Integer PCM: scale to [-1, 1) so levels match float files.
        wave = wave.astype(np.float32) / float(np.iinfo(wave.dtype).max + 1)
    wave = wave.astype(np.float32, copy=False)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    elif wave.ndim != 1:
        raise ValueError(f"expected audio of shape (samples,) or (samples, channels), got {wave.shape}")
    return wave


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resamples mono float32 audio with soxr (high quality, streaming-capable)."""
    if orig_sr == target_sr:
        return wave.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(wave.astype(np.float32, copy=False), orig_sr, target_sr, quality="HQ").astype(
        np.float32, copy=False
    )


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Centre-crops or symmetrically zero-pads a waveform to exactly ``n`` samples."""
    if len(wave) == n:
        return wave
    if len(wave) > n:
        start = (len(wave) - n) // 2
        return wave[start : start + n]
    out = np.zeros(n, np.float32)
    start = (n - len(wave)) // 2
    out[start : start + len(wave)] = wave
    return out


def preprocess_audio(wave: np.ndarray, sample_rate: int, cfg: AudioConfig) -> np.ndarray:
    """Turns a whole audio clip into the model's waveform input.

    Args:
        wave: (samples,) or (samples, channels) audio, float in [-1, 1] or integer PCM.
        sample_rate: Rate of ``wave`` in Hz.
        cfg: Audio preprocessing settings.

    Returns:
        A (clip_samples,) float32 mono waveform at ``cfg.sample_rate``.
    """
    mono = resample(to_mono(wave), sample_rate, cfg.sample_rate)
    return fit_length(mono, cfg.clip_samples)


def window_at(wave: np.ndarray, t: float, cfg: AudioConfig) -> np.ndarray:
    """Cuts the audio window that goes with a frame at time ``t`` seconds.

    ``wave`` is mono float32 at ``cfg.sample_rate`` starting at time 0. Samples before 0 or past the
    end are zeros. The window ends at ``t`` (``AudioAlign.END``) or is centred on it.
    """
    n = cfg.clip_samples
    anchor = int(round(t * cfg.sample_rate))
    start = anchor - n if cfg.align is AudioAlign.END else anchor - n // 2
    out = np.zeros(n, np.float32)
    lo, hi = max(start, 0), min(start + n, len(wave))
    if hi > lo:
        out[lo - start : hi - start] = wave[lo:hi]
    return out
