"""Two small audio-visual data sets made from real material that installs offline.

Not drawn by edgemm's generator: every image is a real scan or a real font's glyph on a real
photograph, every sound a real speech synthesiser's utterance in real recorded sounds, with the
nuisances a camera and a microphone produce. About a fifth of the samples have one modality
unusable (lens covered or out of focus, the speaker silent), so fusion matters.

- ``digits`` (manifest CSV): scikit-learn's 1797 handwritten-digit scans (8x8, upscaled as a
  low-resolution camera would) in random ink and paper colours on scikit-image photographs; the
  digit's name spoken by espeak-ng in many voices, speeds and pitches.
- ``digits_newvoices`` (manifest CSV with a split column): the same construction, each sample's
  split set by its espeak-ng speaker variant, so the test and validation voices never occur in
  training.
- ``letters`` (video folder of H.264 + AAC clips): capital letters A-J in ~100 Debian fonts on
  photographs, the camera drifting; the NATO word (alpha ... juliett) spoken by flite's voices,
  tempo and pitch changed by sox, with room reverb, in recorded household sounds.

Needs: scikit-learn, scikit-image, Pillow, soundfile, scipy, PyAV; apt ``espeak-ng flite sox
sound-theme-freedesktop`` and font packages (``fonts-dejavu fonts-liberation fonts-freefont-ttf
fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea fonts-noto-mono``).

Usage:
    python benchmarks/realsets.py --out ~/.cache/edgemm/realsets   # both sets
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16000
CANVAS = 96
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NATO = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett"]
ESPEAK_VOICES = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029"]
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "croak"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
PHOTOS = ["astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "grass", "gravel",
          "horse", "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text"]


@dataclass
class Sample:
    image: np.ndarray  # HxWx3 uint8
    audio: np.ndarray  # float32 mono at SR
    label: str
    corrupt: str  # "", "image" or "audio"
    split: str = ""  # "" (the loader's stratified split) or train / val / test


# digits_newvoices: the espeak-ng speaker variants heard only in validation or only in test, never in
# training (a deployed device meets new people); every accent appears with every variant.
VAL_VARIANTS = ("m5", "f4")
TEST_VARIANTS = ("m2", "f2", "croak")


def voice_split(variant: str) -> str:
    return "test" if variant in TEST_VARIANTS else "val" if variant in VAL_VARIANTS else "train"


# ---------------------------------------------------------------- shared material ---------------
def load_photos() -> list[np.ndarray]:
    """The scikit-image sample photographs that ship with the package, as RGB float [0, 1]."""
    from skimage import data

    out = []
    for name in PHOTOS:
        try:
            im = np.asarray(getattr(data, name)(), np.float32)
        except Exception:  # noqa: BLE001 - some need a download; skip them
            continue
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        im = im[..., :3]
        out.append(im / (255.0 if im.max() > 1.5 else 1.0))
    if len(out) < 5:
        raise RuntimeError("scikit-image ships fewer than 5 sample photographs here")
    return out


def load_sounds() -> list[np.ndarray]:
    """Recorded system sounds (sound-theme-freedesktop), mono at SR: bells, phones, shutters, ..."""
    import soundfile as sf
    import soxr

    out = []
    for f in sorted(SOUNDS.glob("*.oga")):
        wave, sr = sf.read(str(f), dtype="float32", always_2d=True)
        w = soxr.resample(wave.mean(1), sr, SR)
        if np.abs(w).max() > 1e-3:
            out.append(w / np.abs(w).max())
    if not out:
        raise RuntimeError(f"no sounds in {SOUNDS}; apt install sound-theme-freedesktop")
    return out


def font_files() -> list[str]:
    out = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, check=True).stdout
    files = sorted({ln.split(":")[0].strip() for ln in out.splitlines() if ln.strip().endswith((".ttf:", ".otf:", ".t1:"))
                    or ln.split(":")[0].strip().endswith((".ttf", ".otf", ".t1"))})
    return [f for f in files if "Symbol" not in f and "Dingbat" not in f and "D050000L" not in f]


# ---------------------------------------------------------------- camera ------------------------
def background(photos: list[np.ndarray], rng: np.random.Generator, h: int, w: int,
               paper: tuple[float, float] = (0.3, 0.8)) -> np.ndarray:
    import cv2

    p = photos[rng.integers(len(photos))]
    side = int(rng.uniform(0.25, 0.9) * min(p.shape[:2]))
    y, x = rng.integers(0, p.shape[0] - side + 1), rng.integers(0, p.shape[1] - side + 1)
    bg = cv2.resize(p[y : y + side, x : x + side], (w, h), interpolation=cv2.INTER_AREA)
    tint = rng.uniform(0, 1, 3)
    mix = rng.uniform(*paper)  # paper colour over the photograph
    return (1 - mix) * bg + mix * tint


def place(mask: np.ndarray, rng: np.random.Generator, h: int, w: int, scale: tuple[float, float],
          shift: tuple[float, float] = (0.0, 0.0), jitter: float = 0.8) -> np.ndarray:
    """Warps a square glyph mask onto an h x w canvas: scale, rotation, position."""
    import cv2

    s = rng.uniform(*scale) * min(h, w) / mask.shape[0]
    angle = rng.uniform(-15, 15)
    m = cv2.getRotationMatrix2D((mask.shape[1] / 2, mask.shape[0] / 2), angle, s)
    room_x, room_y = max(0.0, w - s * mask.shape[1]) / 2, max(0.0, h - s * mask.shape[0]) / 2
    m[0, 2] += w / 2 - mask.shape[1] / 2 + rng.uniform(-1, 1) * room_x * jitter + shift[0]
    m[1, 2] += h / 2 - mask.shape[0] / 2 + rng.uniform(-1, 1) * room_y * jitter + shift[1]
    return cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def ink_for(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An ink colour at least 0.3 away in luminance from the background (dark or light ink)."""
    lum = float(bg.mean())
    for _ in range(50):
        ink = rng.uniform(0, 1, 3)
        if abs(ink.mean() - lum) >= 0.3:
            return ink
    return np.full(3, 0.0 if lum > 0.5 else 1.0)


@dataclass
class Camera:
    """One camera's look for a sample: exposure, colour cast, gamma, focus, sensor noise."""

    gain: float
    cast: np.ndarray
    gamma: float
    blur: float
    noise: float
    gradient: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Camera":
        return cls(rng.uniform(0.55, 1.35), rng.uniform(0.8, 1.2, 3), rng.uniform(0.7, 1.5), rng.uniform(0, 1.3),
                   rng.uniform(0.0, 0.05), rng.uniform(-0.35, 0.35, 2))

    def shoot(self, scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        h, w = scene.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        light = 1 + self.gradient[0] * (xx / w - 0.5) + self.gradient[1] * (yy / h - 0.5)
        x = np.clip(scene * light[..., None] * self.gain * self.cast, 0, 1) ** self.gamma
        if self.blur > 0.3:
            x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), self.blur)
        x = x + rng.normal(0, self.noise, x.shape)
        return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def unusable_image(photos: list[np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A frame that shows no class: lens covered, badly out of focus, or an empty scene."""
    import cv2

    kind = rng.integers(3)
    if kind == 0:  # covered: dark, noisy
        x = rng.uniform(0, 0.08) + rng.normal(0, 0.02, (h, w, 3))
    elif kind == 1:  # scene without the object
        x = background(photos, rng, h, w)
    else:  # far out of focus
        x = cv2.GaussianBlur(background(photos, rng, h, w).astype(np.float32), (0, 0), 8)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------- microphone --------------------
def read_wav(path: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    wave, sr = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(wave.mean(1), sr, SR).astype(np.float32)


def trim(w: np.ndarray, thresh: float = 0.02) -> np.ndarray:
    idx = np.flatnonzero(np.abs(w) > thresh * max(np.abs(w).max(), 1e-6))
    return w[idx[0] : idx[-1] + 1] if len(idx) else w


def espeak(word: str, rng: np.random.Generator, tmp: str, variant: str | None = None) -> np.ndarray:
    accent = ESPEAK_VOICES[rng.integers(len(ESPEAK_VOICES))]
    voice = f"{accent}+{variant or ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]}"
    f = os.path.join(tmp, "s.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.uniform(120, 210))), "-p", str(int(rng.uniform(20, 80))),
                    "-a", "150", "-w", f, word], check=True, capture_output=True)
    return trim(read_wav(f))


def flite(word: str, rng: np.random.Generator, tmp: str) -> np.ndarray:
    raw, out = os.path.join(tmp, "r.wav"), os.path.join(tmp, "o.wav")
    subprocess.run(["flite", "-voice", FLITE_VOICES[rng.integers(len(FLITE_VOICES))], "-t", word, "-o", raw],
                   check=True, capture_output=True)
    effects = ["tempo", f"{rng.uniform(0.8, 1.25):.3f}", "pitch", f"{rng.uniform(-350, 350):.0f}"]
    if rng.random() < 0.6:
        effects += ["reverb", f"{rng.uniform(10, 60):.0f}", "50", f"{rng.uniform(20, 90):.0f}"]
    subprocess.run(["sox", raw, "-r", str(SR), "-c", "1", out, *effects], check=True, capture_output=True)
    return trim(read_wav(out))


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise, unit RMS."""
    white = rng.normal(0, 1, n)
    spec = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spec = spec / f ** rng.choice([0.0, 0.5, 1.0])
    x = np.fft.irfft(spec, n)
    return (x / (x.std() + 1e-9)).astype(np.float32)


def ambience(sounds: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Room noise: coloured noise plus, often, a recorded sound somewhere in the window, unit RMS."""
    x = coloured_noise(n, rng)
    if rng.random() < 0.7:
        s = sounds[rng.integers(len(sounds))]
        start = rng.integers(-len(s) // 2, n)
        lo, hi = max(start, 0), min(start + len(s), n)
        if hi > lo:
            x[lo:hi] += rng.uniform(1, 4) * s[lo - start : hi - start] / (s.std() + 1e-9)
    return x / (x.std() + 1e-9)


def microphone(speech: np.ndarray | None, sounds: list[np.ndarray], n: int, offset: int,
               rng: np.random.Generator) -> np.ndarray:
    """Speech at ``offset`` in an n-sample window, in room noise at 0-20 dB SNR, a mic's band and level."""
    from scipy.signal import butter, sosfilt

    out = np.zeros(n, np.float32)
    if speech is not None:
        s = speech[: max(0, n - offset)]
        out[offset : offset + len(s)] = s
        rms = float(np.sqrt(np.mean(s**2))) + 1e-9
        snr = rng.uniform(0, 20)
        out += ambience(sounds, n, rng) * rms / 10 ** (snr / 20)
    else:
        out += ambience(sounds, n, rng) * rng.uniform(0.01, 0.1)
    lo, hi = rng.uniform(50, 300), rng.uniform(3000, 7800)
    out = sosfilt(butter(2, [lo, hi], btype="band", fs=SR, output="sos"), out).astype(np.float32)
    level = 10 ** (rng.uniform(-26, -3) / 20)
    return (out / (np.abs(out).max() + 1e-9) * level).astype(np.float32)


# ---------------------------------------------------------------- the two sets ------------------
def corrupt_kind(rng: np.random.Generator, fraction: float) -> str:
    u = rng.random()
    return "image" if u < fraction / 2 else "audio" if u < fraction else ""


def digits_set(per_class: int, seed: int, corrupt: float = 0.2, by_voice: bool = False) -> list[Sample]:
    """Handwritten digit scans + spoken digit names (espeak-ng).

    ``by_voice``: each sample's split follows its speaker variant (``voice_split``), so the test
    voices never occur in training.
    """
    import cv2
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    photos, sounds = load_photos(), load_sounds()
    d = load_digits()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in range(10):
            scans = rng.permutation(np.flatnonzero(d.target == c))[:per_class]  # each scan used once
            for i in scans:
                kind = corrupt_kind(rng, corrupt)
                if kind == "image":
                    image = unusable_image(photos, rng, CANVAS, CANVAS)
                else:
                    mask = cv2.resize(d.images[i].astype(np.float32) / 16.0, (32, 32), interpolation=cv2.INTER_LINEAR)
                    # A sheet held up to the camera: the scan fills half the frame or more, near the centre.
                    m = place(np.pad(mask, 4), rng, CANVAS, CANVAS, (0.55, 0.85), jitter=0.4)[..., None]
                    bg = background(photos, rng, CANVAS, CANVAS, paper=(0.5, 0.9))
                    scene = bg * (1 - m) + ink_for(bg, rng) * m
                    image = Camera.draw(rng).shoot(scene, rng)
                variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))] if by_voice else None
                speech = None if kind == "audio" else espeak(DIGIT_WORDS[c], rng, tmp, variant)
                off = 0 if speech is None else int(rng.uniform(0, max(1, SR - len(speech))))
                out.append(Sample(image, microphone(speech, sounds, SR, off, rng), DIGIT_WORDS[c], kind,
                                  voice_split(variant) if variant else ""))
    return out


def glyph_mask(letter: str, font: str, size: int = 64) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    f = ImageFont.truetype(font, int(size * 0.8))
    im = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(im)
    box = draw.textbbox((0, 0), letter, font=f)
    draw.text(((size - box[2] - box[0]) / 2, (size - box[3] - box[1]) / 2), letter, fill=255, font=f)
    return np.asarray(im, np.float32) / 255.0


def letters_clips(per_class: int, seed: int, corrupt: float = 0.2, seconds: float = 1.6, fps: int = 15):
    """Yields (label, frames, audio, corrupt) clips: a letter in a random font, its NATO word spoken."""
    rng = np.random.default_rng(seed)
    photos, sounds, fonts = load_photos(), load_sounds(), font_files()
    h, w = CANVAS, CANVAS * 4 // 3
    n_frames, n = int(seconds * fps), int(seconds * SR)
    with tempfile.TemporaryDirectory() as tmp:
        for word in NATO:
            letter = word[0].upper()
            for _ in range(per_class):
                kind = corrupt_kind(rng, corrupt)
                frames = []
                if kind == "image":
                    still = unusable_image(photos, rng, h, w)
                    frames = [still] * n_frames
                else:
                    mask = glyph_mask(letter, fonts[rng.integers(len(fonts))])
                    cam = Camera.draw(rng)
                    bg = background(photos, rng, h + 16, w + 16)
                    ink = ink_for(bg, rng)
                    drift = rng.uniform(-6, 6, 2)
                    noise = np.random.default_rng(rng.integers(1 << 31))
                    pose = int(rng.integers(1 << 31))  # the same scale, angle, position in every frame
                    for k in range(n_frames):
                        t = k / max(1, n_frames - 1)
                        m = place(mask, np.random.default_rng(pose), h, w, (0.4, 0.75),
                                  (drift[0] * t, drift[1] * t))[..., None]
                        ox, oy = int(8 + drift[0] * t) % 16, int(8 + drift[1] * t) % 16
                        frame_bg = bg[oy : oy + h, ox : ox + w]
                        frames.append(cam.shoot(frame_bg * (1 - m) + ink * m, noise))
                speech = None if kind == "audio" else flite(word, rng, tmp)
                # The word ends inside the last second, where the samples' audio windows are.
                off = 0 if speech is None else int(rng.uniform(0.35, 0.6) * SR)
                yield word, frames, microphone(speech, sounds, n, off, rng), kind, fps


# ---------------------------------------------------------------- writers -----------------------
def write_manifest(samples: list[Sample], root: Path) -> Path:
    """Writes JPEG images (a camera's compression) and 16-bit WAVs, and ``manifest.csv`` (a split column
    only when the samples carry one)."""
    import cv2
    import soundfile as sf

    (root / "media").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, s in enumerate(samples):
        stem = f"media/{s.label}_{k:05d}"
        q = int(np.random.default_rng(k).uniform(50, 95))
        cv2.imwrite(str(root / f"{stem}.jpg"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        sf.write(str(root / f"{stem}.wav"), s.audio, SR, subtype="PCM_16")
        rows.append({"image": f"{stem}.jpg", "audio": f"{stem}.wav", "label": s.label, "corrupt": s.corrupt,
                     **({"split": s.split} if s.split else {})})
    path = root / "manifest.csv"
    with path.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["image", "audio", "label", "corrupt"] + (["split"] if "split" in rows[0] else []))
        wr.writeheader()
        wr.writerows(rows)
    return path


def write_video_folder(clips, root: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edgemm.data.video import write_clip

    counts: dict[str, int] = {}
    for label, frames, audio, kind, fps in clips:
        k = counts[label] = counts.get(label, 0) + 1
        (root / label).mkdir(parents=True, exist_ok=True)
        write_clip(root / label / f"{label}_{k:04d}{'_' + kind if kind else ''}.mp4", frames, fps, audio, SR)
    return root


SETS = {"digits": "manifest", "letters": "video", "digits_newvoices": "manifest"}
# Bump when a set's construction changes (v1 digits: smaller, busier).
VERSION = {"digits": 2, "letters": 1, "digits_newvoices": 1}


def build(name: str, out: Path, per_class: int, seed: int) -> Path:
    """Builds one set under ``out/name`` (skipped when its completion marker exists); returns its data path."""
    root = out / f"{name}-v{VERSION[name]}-{per_class}-s{seed}"
    done = root / ".complete"
    data = root / "manifest.csv" if SETS[name] == "manifest" else root / "clips"
    if done.is_file():
        return data
    if name in ("digits", "digits_newvoices"):
        write_manifest(digits_set(per_class, seed, by_voice=name == "digits_newvoices"), root)
    else:
        write_video_folder(letters_clips(per_class, seed), data)
    done.write_text(hashlib.sha1(name.encode()).hexdigest())
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path.home() / ".cache" / "edgemm" / "realsets")
    p.add_argument("--sets", default="digits,letters")
    p.add_argument("--digits-per-class", type=int, default=100)
    p.add_argument("--letters-per-class", type=int, default=40, help="clips per class (3 samples each)")
    p.add_argument("--newvoices-per-class", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for name in a.sets.split(","):
        per = {"digits": a.digits_per_class, "letters": a.letters_per_class,
               "digits_newvoices": a.newvoices_per_class}[name]
        print(name, build(name, a.out, per, a.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
