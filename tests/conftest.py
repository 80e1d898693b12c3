"""Shared fixtures: small generated data sets and helpers to write media files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the user's cache untouched: the default set goes to a per-session directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEMM_CACHE", str(tmp_path_factory.mktemp("edgemm-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def small_manifest(tmp_path_factory) -> Path:
    """The generated default classes, 6 samples each, in the manifest format (with a split column)."""
    from edgemm.data.synthetic import SyntheticConfig, make_default

    return make_default(SyntheticConfig(samples_per_class=6), root=tmp_path_factory.mktemp("small"))


def write_wav(path: Path, wave: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr)
    return path


def write_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_manifest(path: Path, rows: list[list[str]], header=("image", "audio", "label", "split")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def media_dir(tmp_path) -> Path:
    """A directory with a few good images and sounds for hand-built manifests."""
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(tmp_path / f"img{i}.png", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
        write_wav(tmp_path / f"snd{i}.wav", tone(440 * (i + 1), 16000, 0.5), 16000)
    return tmp_path
