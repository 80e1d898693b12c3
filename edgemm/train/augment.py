"""Batch-level augmentation for both modalities and modality dropout (all on-device, seeded)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_image(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random affine (scale, rotation, shift, flip) and brightness/contrast on normalised images."""
    b = x.shape[0]
    r = lambda *s: torch.rand(*s, generator=g, device=g.device).to(x.device)  # noqa: E731
    scale = 0.85 + 0.3 * r(b)
    angle = (r(b) - 0.5) * (math.pi / 6)
    flip = torch.where(r(b) < 0.5, -1.0, 1.0).to(x.device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, (r(b) - 0.5) * 0.2], 1), torch.stack([sin * flip, cos, (r(b) - 0.5) * 0.2], 1)],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    contrast = (0.75 + 0.5 * r(b, 1, 1, 1))
    brightness = (r(b, 3, 1, 1) - 0.5) * 0.4
    return x * contrast + brightness


def augment_audio(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random gain, circular time shift (up to 15 % of the clip) and added white noise."""
    b, n = x.shape
    r = lambda *s: torch.rand(*s, generator=g, device=g.device).to(x.device)  # noqa: E731
    shifts = ((r(b) - 0.5) * 0.3 * n).long()
    idx = (torch.arange(n, device=x.device)[None, :] - shifts[:, None]) % n
    x = torch.gather(x, 1, idx)
    gain = 0.6 + 0.8 * r(b, 1)
    noise = torch.randn(b, n, generator=g, device=g.device).to(x.device) * (0.005 * r(b, 1))
    return x * gain + noise


def modality_dropout(b: int, p: float, g: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Presence flags (B,) for image and audio: with probability ``p`` a sample loses one of them."""
    drop = torch.rand(b, generator=g, device=g.device) < p
    which = torch.rand(b, generator=g, device=g.device) < 0.5
    image_present = (~(drop & which)).float().to(device)
    audio_present = (~(drop & ~which)).float().to(device)
    return image_present, audio_present


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
