import pytest
import torch

from edgemm.train.augment import mixup


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
