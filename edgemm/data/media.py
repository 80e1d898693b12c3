"""Reading image and audio files with clear, file-naming errors (torch-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemm.data.errors import DataError

# Peak level below which a clip counts as silent (about -80 dBFS).
SILENCE_PEAK = 1e-4


def read_image(path: Path) -> np.ndarray:
    """Decodes any image Pillow reads into an RGB uint8 HxWx3 array.

    Raises:
        DataError: If the file is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(path, "is a directory, expected an image file" if path.is_dir() else "image file does not exist")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(path, f"cannot decode image ({e.__class__.__name__}: {e})") from None
    if rgb.size == 0:
        raise DataError(path, "image has no pixels")
    return rgb


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decodes a WAV/FLAC/OGG file into float32 (samples, channels) and its sample rate.

    Raises:
        DataError: If the file is missing, undecodable, empty or silent.
    """
    import soundfile as sf

    if not path.is_file():
        raise DataError(path, "is a directory, expected an audio file" if path.is_dir() else "audio file does not exist")
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise DataError(path, f"cannot decode audio ({e})") from None
    check_audio(wave, path)
    return wave, int(sr)


def check_audio(wave: np.ndarray, path: Path) -> None:
    """Rejects empty or silent audio, naming ``path``."""
    if wave.size == 0:
        raise DataError(path, "audio is empty (0 samples)")
    if not np.all(np.isfinite(wave)):
        raise DataError(path, "audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise DataError(path, f"audio is silent (peak {peak:.2e} < {SILENCE_PEAK:.0e})")
