"""The embedded default data set: generated audio-visual "events", no network needed.

Ten classes, each a (shape, sound) pair on a ladder: every shape belongs to two classes and every
sound to two classes, but every pair is unique. So an image-only or audio-only model can at best
tell a class from its neighbour by chance (about 50 %), while a fused model can reach the top.
Nuisance variation: position, scale, rotation, colour, background, clutter and small distractor
shapes for images; pitch, duration, onset, gain, quieter distractor events and background noise for
audio. A share of samples has one modality corrupted (an image of noise without the object, or audio
of noise without the event).

Version 2 made the set harder (lower SNR, smaller objects, distractors): under version 1 a teacher
reached 99.5 % on the uncorrupted samples, so every model sat at the ceiling set by the corrupted
ones and compression methods could not be told apart.

Everything is drawn from ``numpy.random.default_rng((seed, class, index))``, so each sample is
reproducible on its own and generation is deterministic in any order.
"""

from __future__ import annotations

import colorsys
import csv
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgemm.atomic import remove_leftovers
from edgemm.data.splits import stratified_split

SHAPES = ("circle", "square", "triangle", "ring", "cross")
SOUNDS = ("beep", "chirp", "knock", "buzz", "whoosh")
# Class k pairs shape k // 2 with sound (k + 1) // 2: a ladder through all shapes and sounds.
CLASSES = tuple((SHAPES[k // 2], SOUNDS[((k + 1) // 2) % len(SOUNDS)]) for k in range(2 * len(SHAPES)))
LABELS = tuple(f"{shape}_{sound}" for shape, sound in CLASSES)

GENERATOR_VERSION = 2


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generated set; they (with the version) name its cache directory.

    Attributes:
        samples_per_class: Samples of each of the ten classes.
        image_size: Side of the stored PNG images.
        sample_rate: Rate of the stored WAV files.
        seconds: Length of each audio clip.
        corrupt_fraction: Share of samples with one modality replaced by noise.
        snr_db: Range of the event-to-background-noise ratio.
        object_scale: Range of the object's radius as a share of the image side.
        distractors: Most distractors per sample: small shapes (radius at most half the smallest
            object) in the image, quieter events (10-20 dB below the class's) in the audio.
        seed: Root seed.
    """

    samples_per_class: int = 300
    image_size: int = 96
    sample_rate: int = 16000
    seconds: float = 1.0
    corrupt_fraction: float = 0.1
    snr_db: tuple[float, float] = (-5.0, 15.0)
    object_scale: tuple[float, float] = (0.14, 0.30)
    distractors: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("snr_db", "object_scale"):  # lists from JSON or the command line
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.samples_per_class < 3:
            raise ValueError(f"samples_per_class must be >= 3, got {self.samples_per_class}")
        if not 0 <= self.corrupt_fraction < 1:
            raise ValueError(f"corrupt_fraction must be in [0, 1), got {self.corrupt_fraction}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")
        for name in ("snr_db", "object_scale"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be a (low, high) range, got {getattr(self, name)}")
        if not (0.05 < self.object_scale[0] and self.object_scale[1] <= 0.4):
            raise ValueError(f"object_scale must lie in (0.05, 0.4], got {self.object_scale}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")

    def key(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"default-v{GENERATOR_VERSION}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


# ---------------------------------------------------------------------------------------- images
def _colour(rng: np.random.Generator, lo: float, hi: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(lo, hi))
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    a, b = np.asarray(_colour(rng, 0.05, 0.4), np.float32), np.asarray(_colour(rng, 0.05, 0.4), np.float32)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    ramp = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
    img = a + (b - a) * ramp[..., None]
    img = np.broadcast_to(img, (size, size, 3)) + rng.normal(0, 6, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(cx: float, cy: float, r: float, n: int, angle: float) -> list[tuple[float, float]]:
    t = angle + np.arange(n) * 2 * np.pi / n
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in t]


def _rotated_rect(cx, cy, half_w, half_h, angle) -> list[tuple[float, float]]:
    c, s = np.cos(angle), np.sin(angle)
    pts = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _draw_shape(draw, shape: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r * 0.3)))
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r * 1.1, 4, angle), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.2, 3, angle), fill=fill)
    elif shape == "cross":
        for a in (angle, angle + np.pi / 2):
            draw.polygon(_rotated_rect(cx, cy, r, r * 0.28, a), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid shapes are {list(SHAPES)}")


def render_image(shape: str | None, rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """Draws one shape (or, for ``None``, only clutter and noise) on a cluttered background.

    Up to ``cfg.distractors`` smaller shapes of any kind are drawn first; the class's shape is the
    large one.
    """
    from PIL import Image, ImageDraw

    size = cfg.image_size
    im = Image.fromarray(_background(rng, size))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(0, 6))):  # clutter: thin lines and small dots
        p = rng.uniform(0, size, 4)
        if rng.random() < 0.5:
            draw.line([tuple(p[:2]), tuple(p[2:])], fill=_colour(rng, 0.3, 1.0), width=1)
        else:
            d = rng.uniform(1, 2.5)
            draw.ellipse([p[0] - d, p[1] - d, p[0] + d, p[1] + d], fill=_colour(rng, 0.3, 1.0))
    r_max = size * cfg.object_scale[0] / 2
    for _ in range(int(rng.integers(0, cfg.distractors + 1))):
        r = rng.uniform(0.5, 1.0) * r_max
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        _draw_shape(draw, SHAPES[int(rng.integers(len(SHAPES)))], cx, cy, r, rng.uniform(0, 2 * np.pi),
                    _colour(rng, 0.4, 0.9))
    if shape is not None:
        r = size * rng.uniform(*cfg.object_scale)
        cx, cy = rng.uniform(r + 2, size - r - 2, 2)
        _draw_shape(draw, shape, cx, cy, r, rng.uniform(0, 2 * np.pi), _colour(rng, 0.65, 1.0))
    img = np.asarray(im)
    if shape is None:  # a corrupted frame: sensor noise over blocks, no object
        img = np.clip(img.astype(np.float32) + rng.normal(0, 60, img.shape), 0, 255).astype(np.uint8)
    return img


# ----------------------------------------------------------------------------------------- audio
def _envelope(n: int, sr: int, attack: float = 0.005) -> np.ndarray:
    env = np.ones(n, np.float32)
    k = min(n // 2, max(1, int(attack * sr)))
    env[:k] = np.linspace(0, 1, k)
    env[-k:] = np.linspace(1, 0, k)
    return env


def _event(sound: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    if sound == "beep":
        n = int(rng.uniform(0.15, 0.4) * sr)
        t = np.arange(n) / sr
        return np.sin(2 * np.pi * rng.uniform(500, 2000) * t) * _envelope(n, sr)
    if sound == "chirp":
        n = int(rng.uniform(0.2, 0.5) * sr)
        f0 = rng.uniform(400, 1000)
        f = np.linspace(f0, f0 * rng.uniform(2, 4), n)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * _envelope(n, sr)
    if sound == "knock":
        gap, tau = int(rng.uniform(0.08, 0.16) * sr), rng.uniform(0.005, 0.015)
        clicks = int(rng.integers(2, 5))
        out = np.zeros(gap * clicks + int(0.06 * sr), np.float32)
        for c in range(clicks):
            m = int(0.06 * sr)
            burst = np.cumsum(rng.normal(0, 1, m)) * np.exp(-np.arange(m) / (tau * sr))
            burst -= burst.mean()
            out[c * gap : c * gap + m] += burst / (np.abs(burst).max() + 1e-9)
        return out
    if sound == "buzz":
        n = int(rng.uniform(0.2, 0.5) * sr)
        t = np.arange(n) / sr
        saw = 2 * ((t * rng.uniform(90, 250)) % 1.0) - 1
        return saw * _envelope(n, sr)
    if sound == "whoosh":
        n = int(rng.uniform(0.3, 0.6) * sr)
        spec = np.fft.rfft(rng.normal(0, 1, n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        fc = rng.uniform(1000, 4000)
        spec[np.abs(freqs - fc) > 0.4 * fc] = 0
        x = np.fft.irfft(spec, n)
        return x / (np.abs(x).max() + 1e-9) * np.hanning(n)
    raise ValueError(f"unknown sound {sound!r}; valid sounds are {list(SOUNDS)}")


def render_audio(sound: str | None, rng: np.random.Generator, cfg: SyntheticConfig,
                 seconds: float | None = None) -> np.ndarray:
    """Synthesises one clip: the event (or, for ``None``, loud noise only) over background noise.

    Up to ``cfg.distractors`` other events, 10-20 dB below the class's, are mixed in.
    """
    sr = cfg.sample_rate
    n = int(round((cfg.seconds if seconds is None else seconds) * sr))
    out = np.zeros(n, np.float32)

    def place(ev: np.ndarray, gain: float) -> float:
        ev = ev.astype(np.float32)[:n]
        start = int(rng.integers(0, n - len(ev) + 1))
        out[start : start + len(ev)] += ev * gain
        return float(np.sqrt(np.mean(ev**2))) * gain

    if sound is not None:
        gain = rng.uniform(0.2, 0.7)
        rms = place(_event(sound, rng, sr), gain)
        noise_rms = rms / (10 ** (rng.uniform(*cfg.snr_db) / 20))
        for _ in range(int(rng.integers(0, cfg.distractors + 1))):
            place(_event(SOUNDS[int(rng.integers(len(SOUNDS)))], rng, sr), gain * 10 ** (-rng.uniform(10, 20) / 20))
    else:
        noise_rms = rng.uniform(0.1, 0.3)
    noise = rng.normal(0, 1, n)
    if rng.random() < 0.5:  # brown-ish noise half of the time
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
    noise = noise / (np.sqrt(np.mean(noise**2)) + 1e-9) * noise_rms
    return np.clip(out + noise, -1, 1).astype(np.float32)


def render_sample(
    class_index: int, index: int, cfg: SyntheticConfig
) -> tuple[np.ndarray, np.ndarray, str]:
    """Renders sample ``index`` of a class: (RGB uint8 image, float32 audio, corruption)."""
    rng = np.random.default_rng((cfg.seed, class_index, index))
    shape, sound = CLASSES[class_index]
    u = rng.random()
    corrupt = "none"
    if u < cfg.corrupt_fraction / 2:
        corrupt, shape = "image", None
    elif u < cfg.corrupt_fraction:
        corrupt, sound = "audio", None
    image = render_image(shape, rng, cfg)
    audio = render_audio(sound, rng, cfg)
    return image, audio, corrupt


# ------------------------------------------------------------------------------------- the set
def default_cache_dir() -> Path:
    """``$EDGEMM_CACHE``, else ``$XDG_CACHE_HOME/edgemm``, else ``~/.cache/edgemm``."""
    if os.environ.get("EDGEMM_CACHE"):
        return Path(os.environ["EDGEMM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgemm"


def make_default(cfg: SyntheticConfig | None = None, *, root: str | Path | None = None) -> Path:
    """Generates the default set in the manifest format (or reuses a finished one).

    The set is written to a temporary directory and renamed into place when complete, so an
    interrupted run never leaves a half-written set behind.

    Args:
        cfg: Generation parameters.
        root: Parent directory; defaults to ``default_cache_dir() / "datasets"``.

    Returns:
        Path of the ``manifest.csv``.

    Example:
        >>> csv_path = make_default(SyntheticConfig(samples_per_class=3), root=tmp)  # doctest: +SKIP
    """
    import soundfile as sf
    from PIL import Image

    cfg = cfg or SyntheticConfig()
    root = Path(root) if root is not None else default_cache_dir() / "datasets"
    final = root / cfg.key()
    manifest = final / "manifest.csv"
    if manifest.is_file():
        return manifest
    root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root, ".tmp-")  # what killed runs left
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=root))
    try:
        rows = []
        for c, label in enumerate(LABELS):
            (tmp / label).mkdir()
            for i in range(cfg.samples_per_class):
                image, audio, corrupt = render_sample(c, i, cfg)
                stem = f"{label}/{i:05d}"
                Image.fromarray(image).save(tmp / f"{stem}.png", compress_level=1)
                sf.write(tmp / f"{stem}.wav", audio, cfg.sample_rate, subtype="PCM_16")
                rows.append([f"{stem}.png", f"{stem}.wav", label, corrupt])
        splits = stratified_split([r[0] for r in rows], [r[2] for r in rows])
        with (tmp / "manifest.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "audio", "label", "split", "corrupt"])
            for r, s in zip(rows, splits):
                w.writerow([r[0], r[1], r[2], s.value, r[3]])
        (tmp / "config.json").write_text(json.dumps({"version": GENERATOR_VERSION, **asdict(cfg)}, indent=2))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same set first
            if not manifest.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def make_video_folder(
    root: str | Path,
    *,
    clips_per_class: int = 4,
    seconds: float = 3.0,
    fps: int = 15,
    audio_rate: int = 44100,
    cfg: SyntheticConfig | None = None,
) -> Path:
    """Writes the default classes as short H.264 + AAC clips in the video-folder format.

    The object drifts across the frame; the audio is one generated second after another, each
    with the class's sound at a random onset, recorded at ``audio_rate`` (so readers resample).

    Returns:
        ``root``, holding ``<label>/clip_NNN.mp4``.
    """
    from edgemm.data.preprocess import resample
    from edgemm.data.video import write_clip

    cfg = cfg or SyntheticConfig()
    root = Path(root)
    n_frames, n_seconds = int(round(seconds * fps)), int(np.ceil(seconds))
    for c, label in enumerate(LABELS):
        (root / label).mkdir(parents=True, exist_ok=True)
        shape, sound = CLASSES[c]
        for k in range(clips_per_class):
            rng = np.random.default_rng((cfg.seed, c, 1_000_000 + k))
            base = render_image(shape, rng, cfg)
            dx, dy = rng.integers(-8, 9, 2)
            frames = []
            for i in range(n_frames):
                f = i / max(1, n_frames - 1)
                moved = np.roll(base, (int(dy * f), int(dx * f)), axis=(0, 1)).astype(np.int16)
                frames.append(np.clip(moved + rng.integers(-4, 5, moved.shape), 0, 255).astype(np.uint8))
            wave = np.concatenate([render_audio(sound, rng, cfg, 1.0) for _ in range(n_seconds)])
            wave = resample(wave[: int(seconds * cfg.sample_rate)], cfg.sample_rate, audio_rate)
            write_clip(root / label / f"clip_{k:03d}.mp4", frames, fps, wave, audio_rate)
    return root
