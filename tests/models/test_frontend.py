import itertools

import librosa
import numpy as np
import pytest
import torch
from support import tone

from edgemm.data.preprocess import AudioConfig
from edgemm.models.frontend import LOG_EPS, ImageStandardize, LogMelFrontend, SpecAugment, mel_filterbank

CONFIGS = [AudioConfig(), AudioConfig(sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=200, hop_length=100,
                                      n_mels=24, f_max=4000.0),
           # n_fft prime: no split, the dense DFT; a hop that divides neither n_fft nor the clip.
           AudioConfig(sample_rate=8000, clip_seconds=0.3, n_fft=251, win_length=251, hop_length=97, n_mels=20,
                       f_max=4000.0),
           AudioConfig(sample_rate=11025, clip_seconds=0.4, n_fft=384, win_length=300, hop_length=133, n_mels=32,
                       f_min=0.0, f_max=5000.0)]
IDS = ["16k", "8k", "prime-nfft", "odd-hop"]


def test_the_default_frontend_is_staged_and_3x_cheaper_than_a_dense_dft():
    cfg = AudioConfig()
    frontend = LogMelFrontend(cfg)
    assert frontend.n1 > 1 and frontend.n1 * frontend.n2 == cfg.n_fft
    n_freq = cfg.n_fft // 2 + 1
    dense = cfg.n_frames * (2 * n_freq * cfg.n_fft + 2 * n_freq + cfg.n_mels * n_freq)
    assert frontend.macs() * 3 < dense
    assert LogMelFrontend(CONFIGS[2]).n1 == 1  # 251 is prime


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_mel_filterbank_equals_librosa(cfg):
    ours = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_in_graph_log_mel_matches_librosa(cfg):
    rng = np.random.default_rng(0)
    n = cfg.clip_samples
    signals = [rng.normal(0, 0.1, n).astype(np.float32), tone(440, cfg.sample_rate, n / cfg.sample_rate) + 1e-3]
    frontends = [LogMelFrontend(cfg), LogMelFrontend(cfg, staged=False)]
    for y, frontend in itertools.product(signals, frontends):
        ref = librosa.feature.melspectrogram(
            y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
            window="hann", center=False, power=2.0, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max,
        )
        ours = frontend(torch.from_numpy(y)[None])[0, 0].numpy()
        assert ours.shape == ref.shape == (cfg.n_mels, cfg.n_frames)
        np.testing.assert_allclose(ours, np.log(ref + LOG_EPS), atol=2e-4)


def test_spec_augment_masks_only_in_training():
    x = torch.randn(4, 1, 64, 98)
    aug = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=10)
    assert torch.equal(aug.eval()(x), x)
    torch.manual_seed(0)
    y = aug.train()(x)
    changed = (y != x).float().mean().item()
    assert 0.0 < changed < 0.5


def test_image_standardize_gives_zero_mean_unit_variance_and_keeps_a_flat_frame_flat():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g) * torch.tensor([0.2, 1.0, 3.0]).view(3, 1, 1, 1) + 5.0
    y = ImageStandardize()(x)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    var = x.var(dim=(1, 2, 3), unbiased=False)
    torch.testing.assert_close(y.var(dim=(1, 2, 3), unbiased=False), var / (var + 1e-2), atol=1e-4, rtol=1e-4)
    flat = torch.full((1, 3, 8, 8), 0.7) + 1e-4 * torch.randn(1, 3, 8, 8, generator=g)
    assert ImageStandardize()(flat).abs().max() < 0.01  # sensor noise on a covered camera is not amplified


def test_image_standardize_stays_exact_in_a_runtime_that_sums_in_one_float32_total():
    """ExecuTorch's mean over a whole 160 px image (76,800 values) was off by 1e-5, which a student's
    image branch amplified to 6e-4 in a logit; the axis-by-axis mean keeps it at float32 rounding."""
    from executorch.runtime import Runtime

    from edgemm.export.executorch import lower

    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0)) * 4 - 2
    module = ImageStandardize().eval()
    method = Runtime.get().load_program(lower(module, (x,))).load_method("forward")
    got = method.execute([x])[0]
    assert (got - module(x)).abs().max() < 1e-6
