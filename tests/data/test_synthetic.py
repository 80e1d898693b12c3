import csv
from collections import Counter

import numpy as np

from edgemm.data.synthetic import CLASSES, LABELS, SHAPES, SOUNDS, SyntheticConfig, make_default, render_sample


def test_classes_form_a_ladder_so_fusion_is_needed():
    assert len(LABELS) >= 8 and len(set(CLASSES)) == len(CLASSES)  # every (shape, sound) pair is unique
    assert Counter(s for s, _ in CLASSES) == {s: 2 for s in SHAPES}  # each shape: two classes
    assert Counter(a for _, a in CLASSES) == {a: 2 for a in SOUNDS}  # each sound: two classes


def test_samples_are_deterministic_and_vary():
    cfg = SyntheticConfig()
    a_img, a_wav, _ = render_sample(3, 7, cfg)
    b_img, b_wav, _ = render_sample(3, 7, cfg)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_wav, b_wav)
    c_img, c_wav, _ = render_sample(3, 8, cfg)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_wav, c_wav)
    assert a_img.shape == (96, 96, 3) and a_wav.shape == (16000,) and np.abs(a_wav).max() <= 1.0


def test_corrupted_share_and_cached_reuse(tmp_path):
    cfg = SyntheticConfig(samples_per_class=40, corrupt_fraction=0.2)
    path = make_default(cfg, root=tmp_path)
    rows = list(csv.DictReader(path.open()))
    share = Counter(r["corrupt"] for r in rows)
    assert share["image"] > 0 and share["audio"] > 0
    assert 0.12 < (share["image"] + share["audio"]) / len(rows) < 0.28
    mtime = path.stat().st_mtime_ns
    assert make_default(cfg, root=tmp_path) == path and path.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_difficulty_knobs_are_validated_and_name_the_cache():
    import pytest

    with pytest.raises(ValueError, match="snr_db"):
        SyntheticConfig(snr_db=(10, 0))
    with pytest.raises(ValueError, match="object_scale"):
        SyntheticConfig(object_scale=(0.2, 0.6))
    with pytest.raises(ValueError, match="distractors"):
        SyntheticConfig(distractors=-1)
    cfg = SyntheticConfig(snr_db=[0, 20])  # lists (JSON, command line) are accepted
    assert cfg.snr_db == (0.0, 20.0) and cfg.key() != SyntheticConfig().key()


def test_snr_sets_the_background_noise_level():
    from edgemm.data.synthetic import render_audio

    def noise_floor(snr):
        cfg = SyntheticConfig(snr_db=(snr, snr), distractors=0)
        wave = render_audio("beep", np.random.default_rng(5), cfg)
        return np.sort(np.abs(wave))[: len(wave) // 2].mean()  # the quieter half: no event there

    assert noise_floor(-5.0) > 10 * noise_floor(25.0)
