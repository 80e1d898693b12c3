"""Fusion blocks: how the image and audio embeddings become one.

Every block takes ``(z_image, z_audio, m_image, m_audio)`` where ``m_*`` is a (B, 1) presence
mask (1 = the modality is live, 0 = absent) and returns (B, out_dim). Decision-level blocks
(``produces_logits``) return class logits directly and the model adds no head.
"""

from __future__ import annotations

import enum
import math
from typing import Callable

import torch
from torch import nn

from edgemm.models.pruning_hints import PruningHints
from edgemm.registry import Registry


class FusionType(str, enum.Enum):
    CONCAT = "concat"
    WEIGHTED = "weighted"
    GATED = "gated"
    ATTENTION = "attention"
    LATE = "late"


# Blocks are called as ``block(image_dim, audio_dim, *, dim, num_classes, dropout, **fusion_kw)``;
# ``FusionType`` names the built-in ones, plug-ins add theirs under ``edgemm.fusions``.
FUSIONS: Registry[Callable[..., nn.Module]] = Registry("fusion", group="edgemm.fusions")


def create_fusion(kind: FusionType | str, image_dim: int, audio_dim: int, **kw) -> nn.Module:
    """Builds a registered fusion block; an unknown name lists the registered ones."""
    return FUSIONS.get(kind)(image_dim, audio_dim, **kw)


@FUSIONS.register(FusionType.CONCAT.value)
class ConcatFusion(nn.Module):
    """Feature-level: concatenate both embeddings, then an MLP layer."""

    produces_logits = False

    def __init__(self, image_dim: int, audio_dim: int, *, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(image_dim + audio_dim, dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out_dim = dim

    def forward(self, zi, za, mi, ma):
        return self.proj(torch.cat([zi, za], dim=1))


@FUSIONS.register(FusionType.WEIGHTED.value)
class WeightedFusion(nn.Module):
    """A learned weighted sum of projected embeddings, renormalised over the live modalities."""

    produces_logits = False

    def __init__(self, image_dim: int, audio_dim: int, *, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj_image = nn.Linear(image_dim, dim)
        self.proj_audio = nn.Linear(audio_dim, dim)
        self.weight_logits = nn.Parameter(torch.zeros(2))
        self.act = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out_dim = dim

    def forward(self, zi, za, mi, ma):
        w = torch.softmax(self.weight_logits, dim=0)
        wi, wa = w[0] * mi, w[1] * ma
        fused = (wi * self.proj_image(zi) + wa * self.proj_audio(za)) / (wi + wa + 1e-6)
        return self.act(fused)


@FUSIONS.register(FusionType.GATED.value)
class GatedFusion(nn.Module):
    """Gated product: each modality's features are gated element-wise by the other modality."""

    produces_logits = False

    def __init__(self, image_dim: int, audio_dim: int, *, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.h_image, self.h_audio = nn.Linear(image_dim, dim), nn.Linear(audio_dim, dim)
        self.gate_image = nn.Linear(audio_dim, dim)  # audio decides how much image passes
        self.gate_audio = nn.Linear(image_dim, dim)  # and vice versa
        self.drop = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, zi, za, mi, ma):
        hi = torch.tanh(self.h_image(zi)) * torch.sigmoid(self.gate_image(za))
        ha = torch.tanh(self.h_audio(za)) * torch.sigmoid(self.gate_audio(zi))
        return self.drop(hi + ha)


def masked_softmax(scores: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores`` over the last dimension among the keys where ``live`` is 1; 0 elsewhere.

    Exact, and shifted by the largest *live* score, so the live weights sum to at least 1: an
    absent key whose score is far above the live ones (attention logits grow while training; a
    spread of 450 was measured on real data) cannot make every live weight underflow to 0 and the
    row 0/0. Every tensor stays within the scores' own range: an additive -1e4 mask is the usual
    form, but int8 calibration then sees a range of 1e4 and quantizes every real score to zero
    (measured with NNCF and ai-edge-quantizer).

    Args:
        scores: Attention logits (..., keys).
        live: 1.0 for a live key, 0.0 for an absent one, broadcastable to ``scores``; at least one
            key of every row live.
    """
    top = torch.where(live > 0, scores, scores.amin(dim=-1, keepdim=True)).amax(dim=-1, keepdim=True)
    weights = torch.exp((scores - top).clamp(max=0.0)) * live
    return weights / weights.sum(dim=-1, keepdim=True)


class _AttentionBlock(nn.Module):
    """Pre-norm transformer block; attention with separate q/k/v projections (prunable per head)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"fusion dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def pruning_hints(self) -> PruningHints:
        """Queries, keys and values lose whole heads."""
        return PruningHints(num_heads={self.q: self.heads, self.k: self.heads, self.v: self.heads})

    def forward(self, x: torch.Tensor, key_live: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = self.norm1(x)
        q, k, v = (t(h).reshape(b, n, self.heads, -1).transpose(1, 2) for t in (self.q, self.k, self.v))
        att = masked_softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), key_live)
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, n, -1)
        x = x + self.drop(self.proj(out))
        return x + self.drop(self.mlp(self.norm2(x)))


@FUSIONS.register(FusionType.ATTENTION.value)
class AttentionFusion(nn.Module):
    """Cross-modal multi-head attention over [CLS, image token, audio token].

    Absent modalities are masked out as keys, so the CLS token reads only what is live.
    """

    produces_logits = False

    def __init__(
        self,
        image_dim: int,
        audio_dim: int,
        *,
        dim: int,
        num_classes: int,
        heads: int = 4,
        layers: int = 1,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.proj_image, self.proj_audio = nn.Linear(image_dim, dim), nn.Linear(audio_dim, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.type_embed = nn.Parameter(torch.randn(1, 3, dim) * 0.02)
        self.blocks = nn.ModuleList(_AttentionBlock(dim, heads, mlp_ratio, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def pruning_hints(self) -> PruningHints:
        """The residual stream runs through the CLS token and the type embeddings."""
        return PruningHints(unwrapped=[(self.cls, 2), (self.type_embed, 2)])

    def forward(self, zi, za, mi, ma):
        b = zi.shape[0]
        tokens = torch.cat([self.cls.expand(b, -1, -1), self.proj_image(zi)[:, None], self.proj_audio(za)[:, None]], 1)
        x = tokens + self.type_embed
        present = torch.cat([torch.ones_like(mi), mi, ma], dim=1)  # (B, 3)
        key_live = present[:, None, None, :]  # the CLS key is always live, so no row sums to zero
        for blk in self.blocks:
            x = blk(x, key_live)
        return self.norm(x[:, 0])


@FUSIONS.register(FusionType.LATE.value)
class LateFusion(nn.Module):
    """Decision-level: a classifier per modality, logits averaged over the live modalities."""

    produces_logits = True

    def __init__(self, image_dim: int, audio_dim: int, *, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.head_image = nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim, num_classes))
        self.head_audio = nn.Sequential(nn.Dropout(dropout), nn.Linear(audio_dim, num_classes))
        self.out_dim = num_classes

    def pruning_hints(self) -> PruningHints:
        """Both classifiers keep their classes."""
        return PruningHints(keep=[self.head_image, self.head_audio])

    def forward(self, zi, za, mi, ma):
        return (mi * self.head_image(zi) + ma * self.head_audio(za)) / (mi + ma + 1e-6)
