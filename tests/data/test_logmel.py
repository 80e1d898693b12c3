"""The runtime's numpy log-mel is the model's frontend, and streaming computes each frame once."""

import numpy as np
import pytest
import torch
from support import tone

from edgemm.data.logmel import LogMel, StreamingLogMel
from edgemm.data.preprocess import AudioConfig
from edgemm.models.frontend import LogMelFrontend

CONFIGS = [AudioConfig(), AudioConfig(sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=200, hop_length=100,
                                      n_mels=24, f_max=4000.0),
           AudioConfig(sample_rate=8000, clip_seconds=0.3, n_fft=251, win_length=251, hop_length=97, n_mels=20,
                       f_max=4000.0)]
IDS = ["16k", "8k-short-window", "prime-nfft"]


def signals(cfg: AudioConfig, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = tone(440, cfg.sample_rate, n / cfg.sample_rate)
    return np.stack([rng.normal(0, 0.1, n), t + 1e-3, np.zeros(n), 0.9 * np.sign(t)]).astype(np.float32)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_numpy_log_mel_equals_the_models_frontend(cfg):
    waves = signals(cfg, cfg.clip_samples)
    ours = LogMel(cfg)(waves)
    graph = LogMelFrontend(cfg)(torch.from_numpy(waves)).numpy()
    assert ours.shape == graph.shape == (4, 1, cfg.n_mels, cfg.n_frames) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, graph, atol=1e-4)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_streaming_computes_only_new_frames_and_equals_whole_windows(cfg):
    hop, clip = cfg.hop_length, cfg.clip_samples
    stream_wave = signals(cfg, clip + 40 * hop)[0]
    logmel = LogMel(cfg)
    stream = StreamingLogMel(logmel)
    starts = [0, 3 * hop, 3 * hop, 4 * hop, 10 * hop, 10 * hop + 7, 40 * hop]  # steps, a repeat, an unaligned one
    for start in starts:
        out = stream(stream_wave[start:start + clip], start)
        np.testing.assert_allclose(out, logmel(stream_wave[None, start:start + clip])[0], atol=1e-5)  # BLAS blocking
    n = cfg.n_frames
    # computed: the first window, 3 new, none, 1 new, 6 new, a whole unaligned window, then a whole one (no overlap)
    new = [n, min(3, n), 0, min(1, n), min(6, n), n, n]
    assert stream.computed == sum(new) and stream.reused == len(starts) * n - sum(new)


def test_streaming_recomputes_when_shared_samples_changed():
    """Samples read as silence and filled in later (a late chunk) must not leave stale frames."""
    cfg = AudioConfig()
    hop, clip = cfg.hop_length, cfg.clip_samples
    wave = signals(cfg, clip + hop)[0]
    logmel = LogMel(cfg)
    stream = StreamingLogMel(logmel)
    early = wave[:clip].copy()
    early[-2 * hop:] = 0.0  # not arrived yet
    stream(early, 0)
    later = wave[hop:hop + clip]
    np.testing.assert_allclose(stream(later, hop), logmel(later[None])[0], atol=1e-5)
    assert stream.computed == 2 * cfg.n_frames
