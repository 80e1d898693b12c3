import pytest
import torch

from edgemm.train.augment import mixup, window_mix


def test_mixup_mixes_both_modalities_of_a_sample_with_the_same_partner_and_weight():
    torch.manual_seed(0)
    image, audio = torch.randn(16, 3, 8, 8), torch.randn(16, 400)
    mixed_image, mixed_audio, perm, lam = mixup(image, audio, 0.4)
    assert sorted(perm.tolist()) == list(range(16))  # a permutation of the batch
    assert bool(((lam >= 0.5) & (lam <= 1)).all())  # each sample stays the larger part
    for i in (0, 7, 15):
        j, w = int(perm[i]), float(lam[i])
        torch.testing.assert_close(mixed_image[i], w * image[i] + (1 - w) * image[j])
        torch.testing.assert_close(mixed_audio[i], w * audio[i] + (1 - w) * audio[j])
    assert not torch.allclose(mixed_image, image)  # it did mix something


@pytest.mark.parametrize("alpha, spread", [(0.1, "low"), (8.0, "high")])
def test_mixup_alpha_sets_how_strongly_samples_mix(alpha, spread):
    torch.manual_seed(0)
    _, _, _, lam = mixup(torch.zeros(4000, 1, 1, 1), torch.zeros(4000, 1), alpha)
    mean = float(lam.mean())
    # Beta(0.1, 0.1) puts most weight near 0 and 1 (folded: near 1); Beta(8, 8) near 0.5.
    assert mean > 0.85 if spread == "low" else mean < 0.65


def _images(n: int = 8, size: int = 32) -> torch.Tensor:
    from edgemm.data.preprocess import ImageConfig

    cfg = ImageConfig(size=size)
    raw = 0.2 + 0.3 * torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))
    raw[:, :, :, : size // 3] = 0.9  # a bright bar on the left: asymmetric, so a mirror image shows
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    return (raw - mean) / std, cfg


@pytest.mark.parametrize("value, expected", [(True, "camera"), (False, "none"), ("natural", "natural"), ("none", "none")])
def test_policies_parse_from_names_and_from_the_old_boolean(value, expected):
    from edgemm.train.policies import parse_policy

    assert parse_policy(value).value == expected


def test_an_unknown_policy_is_rejected_with_the_valid_ones():
    from edgemm.train import TrainConfig

    with pytest.raises(ValueError, match=r"augment: 'mirror' is not one of \['none', 'camera', 'natural'\]"):
        TrainConfig(augment="mirror")


def test_none_leaves_inputs_unchanged_and_camera_changes_every_sample_within_the_pixel_range():
    from edgemm.train.augment import Augmenter

    x, cfg = _images()
    audio = torch.randn(8, 4000) * 0.1
    g = torch.Generator().manual_seed(0)
    off = Augmenter("none", cfg, 8000)
    assert off.image(x) is x and off.audio(audio, g) is audio
    torch.manual_seed(0)
    cam = Augmenter("camera", cfg, 8000)
    y, a = cam.image(x), cam.audio(audio, g)
    assert y.shape == x.shape and a.shape == audio.shape and a.dtype == torch.float32
    assert all(not torch.allclose(y[i], x[i]) for i in range(8))
    assert all(not torch.allclose(a[i], audio[i]) for i in range(8))
    # Augmented in pixel space and normalised back: every value is a pixel in [0, 1] once de-normalised.
    pixels = y * torch.tensor(cfg.std).view(1, 3, 1, 1) + torch.tensor(cfg.mean).view(1, 3, 1, 1)
    assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5


def test_a_seeded_batch_augments_identically_so_resumed_runs_repeat():
    from edgemm.train.augment import Augmenter

    x, cfg = _images()
    audio = torch.randn(8, 4000) * 0.1
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        aug = Augmenter("camera", cfg, 8000)
        outs.append((aug.image(x), aug.audio(audio, torch.Generator().manual_seed(5))))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=0)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=0, atol=0)


def _left_heavier(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x[..., :half].mean(dim=(1, 2, 3)) > x[..., half:].mean(dim=(1, 2, 3))


def test_camera_never_mirrors_and_natural_does():
    from edgemm.train.augment import Augmenter

    x, cfg = _images(n=64)
    torch.manual_seed(0)
    # Keep only the geometric part: colour inversion would also move the bright half.
    cam, nat = Augmenter("camera", cfg, 8000), Augmenter("natural", cfg, 8000)
    for aug in (cam, nat):
        aug._image = type(aug._image)(*[op for op in aug._image.children() if "Color" not in type(op).__name__
                                        and "Invert" not in type(op).__name__ and "Gray" not in type(op).__name__])
    assert bool(_left_heavier(cam.image(x)).all())
    mirrored = int((~_left_heavier(nat.image(x))).sum())
    assert 15 <= mirrored <= 49  # about half of 64


def test_window_mix_keeps_the_newest_frames_and_takes_the_older_ones_from_one_partner():
    b, k = 64, 4
    # every frame's pixels, audio and flags carry (sample, position): where each came from is readable after mixing
    code = (torch.arange(b)[:, None] * 10 + torch.arange(k)[None]).float()  # (B, K)
    image = code.view(b, k, 1, 1, 1).expand(b, k, 3, 2, 2)
    audio = code.view(b, k, 1).expand(b, k, 8)
    mi, ma = torch.arange(b).float(), -torch.arange(b).float()  # per-sample flags, told apart by sample
    out = window_mix(image, audio, mi, ma, 0.5, torch.Generator().manual_seed(0))
    mixed_image, mixed_audio, mixed_mi, mixed_ma = out
    source = (mixed_image[:, :, 0, 0, 0] // 10).long()  # (B, K): the sample each frame now comes from
    assert torch.equal(mixed_image[:, :, 0, 0, 0] % 10, torch.arange(k).float().expand(b, k))  # frames keep their place
    assert torch.equal(mixed_audio, mixed_image[:, :, 0, 0, :1].expand(b, k, 8))  # audio moved with its frame
    assert mixed_mi.shape == (b, k) and torch.equal(mixed_mi, source.float()) and torch.equal(mixed_ma, -source.float())
    own = source == torch.arange(b)[:, None]
    assert own[:, -1].all()  # the newest frame is always the sample's own
    changed = ~own.all(1)
    assert 16 < int(changed.sum()) < 48  # about half the windows
    for i in torch.nonzero(changed).flatten().tolist():
        n_older = int((~own[i]).sum())
        assert 1 <= n_older <= k - 1 and not own[i, :n_older].any() and own[i, n_older:].all()  # older part, contiguous
        assert len(set(source[i, :n_older].tolist())) == 1  # from one partner
    assert torch.equal(window_mix(image, audio, mi, ma, 0.0, torch.Generator())[0], image)
    frames = image[:, -1]
    assert window_mix(frames, audio[:, -1], mi, ma, 1.0, torch.Generator())[0] is frames  # a frame batch passes through
