"""Batch-level augmentation policies for both modalities, modality dropout and mixup (seeded)."""

from __future__ import annotations

import random

import numpy as np
import torch

from edgemm.data.preprocess import ImageConfig
from edgemm.models.temporal import window_flags
from edgemm.train.policies import AugmentPolicy, parse_policy

__all__ = ["AugmentPolicy", "Augmenter", "mixup", "modality_dropout", "parse_policy", "window_mix"]


class Augmenter:
    """Applies a policy to a batch: kornia for images, audiomentations for waveforms.

    Every sample of the batch gets its own random parameters. Images arrive normalised with the
    model's ``ImageConfig`` mean/std; they are augmented in [0, 1] and normalised back, so the
    policy means the same whatever normalisation the model uses. Random draws come from torch's
    global generator (images) and from Python's and numpy's generators seeded from ``g`` (audio,
    their states restored afterwards), so a seeded epoch repeats exactly.

    Args:
        policy: The policy.
        image: The model's image preprocessing (for its mean and std).
        sample_rate: The model's audio rate.
    """

    def __init__(self, policy: AugmentPolicy | str | bool, image: ImageConfig, sample_rate: int) -> None:
        self.policy = parse_policy(policy)
        self.mean = torch.tensor(image.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(image.std).view(1, 3, 1, 1)
        self.sample_rate = sample_rate
        self._image = self._audio = None
        if self.policy is not AugmentPolicy.NONE:
            self._image, self._audio = _image_pipeline(self.policy), _audio_pipeline()

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """Augments normalised images (B, 3, H, W); a temporal model's (B, K, 3, H, W) frame by frame."""
        if self._image is None:
            return x
        if x.dim() == 5:
            return self.image(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        with torch.no_grad():
            y = self._image((x * std + mean).clamp(0, 1))
        return ((y - mean) / std).contiguous()

    def audio(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augments waveforms (B, N), a temporal model's (B, K, N) window by window; ``g`` seeds the
        numpy generator audiomentations draws from."""
        if self._audio is None:
            return x
        if x.dim() == 3:
            return self.audio(x.flatten(0, 1), g).unflatten(0, x.shape[:2])
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        states = random.getstate(), np.random.get_state()
        random.seed(seed)  # audiomentations draws from Python's and numpy's global generators
        np.random.seed(seed)
        try:
            waves = x.detach().cpu().numpy()
            out = np.stack([self._audio(samples=w, sample_rate=self.sample_rate) for w in waves])
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
        return torch.from_numpy(np.ascontiguousarray(out, np.float32)).to(x.device)


def _image_pipeline(policy: AugmentPolicy):
    import kornia.augmentation as K

    ops = [
        K.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.8, 1.2), padding_mode="reflection", p=1.0),
        K.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomInvert(p=0.1),
        K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=0.2),
    ]
    if policy is AugmentPolicy.NATURAL:
        ops.insert(0, K.RandomHorizontalFlip(p=0.5))
    return K.AugmentationSequential(*ops)


def _audio_pipeline():
    import audiomentations as A

    return A.Compose([
        A.Gain(min_gain_db=-12.0, max_gain_db=6.0, p=1.0),
        A.Shift(min_shift=-0.15, max_shift=0.15, rollover=True, p=1.0),
        A.PolarityInversion(p=0.5),
        A.AddGaussianSNR(min_snr_db=10.0, max_snr_db=40.0, p=0.5),
    ])


def modality_dropout(b: int, p: float, g: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Presence flags (B,) for image and audio: with probability ``p`` a sample loses one of them."""
    drop = torch.rand(b, generator=g, device=g.device) < p
    which = torch.rand(b, generator=g, device=g.device) < 0.5
    image_present = (~(drop & which)).float().to(device)
    audio_present = (~(drop & ~which)).float().to(device)
    return image_present, audio_present


def window_mix(image: torch.Tensor, audio: torch.Tensor, image_present: torch.Tensor, audio_present: torch.Tensor,
               p: float, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Temporal windows whose older frames come from another sample of the batch (labels unchanged).

    With probability ``p`` a window (B, K, ...) keeps its newest ``c`` frames (``c`` uniform in
    1..K-1) and takes the ``K - c`` before them from the same positions of a partner's window: image,
    audio and presence flags alike, so a window can hold a modality for some frames and not others, as
    a stream does when a camera is covered or a sound stops. The answer stays what the newest frames
    show: in a stream the frames before them often belong to an event that has ended, which windows
    cut from inside one clip never show. Single-frame batches (4-D images) pass through.

    Args:
        image: Images (B, K, C, H, W).
        audio: Audio (B, K, ...), waveforms or features.
        image_present: Presence flags (B,) or (B, K).
        audio_present: Likewise for audio.
        p: Probability that a window is mixed.
        g: Generator of the draws.

    Returns:
        The image, audio and flags, the flags (B, K) when the batch is a temporal one.
    """
    if image.dim() != 5 or p <= 0:
        return image, audio, image_present, audio_present
    b, k = image.shape[:2]
    mixed = torch.rand(b, generator=g, device=g.device) < p
    kept = torch.randint(1, k, (b,), generator=g, device=g.device)  # newest frames a window keeps
    partner = torch.randperm(b, generator=g, device=g.device).to(image.device)
    older = (torch.arange(k, device=g.device)[None] < (k - kept)[:, None]) & mixed[:, None]  # (B, K)

    def mix(x: torch.Tensor) -> torch.Tensor:
        take = older.to(x.device).view(b, k, *[1] * (x.dim() - 2))
        return torch.where(take, x[partner], x)

    return mix(image), mix(audio), mix(window_flags(image_present, (b, k))), mix(window_flags(audio_present, (b, k)))


def mixup(image: torch.Tensor, audio: torch.Tensor, alpha: float
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixes each sample with another of the batch, both modalities by the same weight (Zhang et al. 2018).

    Draws from torch's global generator (``fit`` seeds it per epoch).

    Args:
        image: Images (B, C, H, W).
        audio: Waveforms (B, N).
        alpha: Concentration of the Beta(alpha, alpha) the per-sample weights come from.

    Returns:
        The mixed image and audio, the partner index of each sample (B,) and its weight (B,)
        (the weight of the sample itself; the partner gets ``1 - weight``).
    """
    b = image.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(image.device)
    lam = torch.maximum(lam, 1 - lam)  # each sample stays the larger part of its mix
    perm = torch.randperm(b, device=image.device)

    def mix(x: torch.Tensor) -> torch.Tensor:
        w = lam.view(-1, *[1] * (x.ndim - 1))
        return w * x + (1 - w) * x[perm]

    return mix(image), mix(audio), perm, lam
