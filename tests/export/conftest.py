"""Trained tiny models for export tests.

Exports are verified by accuracy for int8, which only means something for a model that has
learned: these fixtures train each ``test_*`` model on an easy 4-class set (colour + tone, each
modality enough on its own) to high accuracy in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_manifest, write_png, write_wav

CLASSES = {"red_low": ((220, 40, 40), 300.0), "green_mid": ((40, 200, 60), 700.0),
           "blue_high": ((50, 60, 230), 1500.0), "yellow_top": ((230, 220, 40), 3000.0)}


def make_easy_manifest(root: Path, per_class: int = 30, seed: int = 0) -> Path:
    """Writes PNG + WAV files and a manifest CSV (80/10/10 split column) for ``CLASSES``."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, (color, freq) in CLASSES.items():
        for i in range(per_class):
            img = rng.integers(0, 80, (48, 48, 3)).astype(np.int16)
            y, x, r = rng.integers(14, 34), rng.integers(14, 34), rng.integers(8, 14)
            yy, xx = np.ogrid[:48, :48]
            img[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = color
            sr = 16000
            t = np.arange(sr // 2) / sr
            f = freq * rng.uniform(0.95, 1.05)
            wave = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.02, t.size)
            name = f"{label}_{i:03d}"
            write_png(root / f"{name}.png", np.clip(img, 0, 255).astype(np.uint8))
            write_wav(root / f"{name}.wav", wave.astype(np.float32), sr)
            split = "train" if i < per_class * 0.6 else "val" if i < per_class * 0.8 else "test"
            rows.append([f"{name}.png", f"{name}.wav", label, split])
    return write_manifest(root / "easy.csv", rows)


@pytest.fixture(scope="session")
def easy_manifest(tmp_path_factory) -> Path:
    return make_easy_manifest(tmp_path_factory.mktemp("easy"), per_class=50)


@pytest.fixture(scope="session")
def trained(easy_manifest, tmp_path_factory):
    """``trained(name)`` -> run directory of ``name`` trained on the easy set (cached per session)."""
    from edgemm.train import TrainConfig, train

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            out = tmp_path_factory.mktemp(f"run-{name}")
            train(name, easy_manifest, out=out / "run", config=TrainConfig(epochs=20, batch_size=16, lr=5e-3,
                                                                          patience=0, seed=0))
            cache[name] = out / "run"
        return cache[name]

    return get
