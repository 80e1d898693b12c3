"""The audio-visual fusion model: frontend + image branch + audio branch + fusion + head."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from edgemm.data.preprocess import PreprocessConfig
from edgemm.models.encoders import create_audio_encoder, create_image_encoder
from edgemm.models.frontend import ImageStandardize, LogMelFrontend, SpecAugment, takes_logmel
from edgemm.models.fusion import FusionType, create_fusion
from edgemm.models.pruning_hints import PruningHints


def example_inputs(preprocess: PreprocessConfig, batch: int = 2, *, logmel: bool = False) -> tuple[torch.Tensor, ...]:
    """Zero inputs shaped for ``preprocess`` (use batch >= 2 for tracing: batch-1 traces fix the batch);
    ``logmel``: audio as the log-mel (B, 1, n_mels, frames) instead of the waveform (``without_frontend``).
    A temporal model's (``preprocess.frames`` = K > 1) have a time axis after the batch: (B, K, ...)."""
    s, a = preprocess.image.size, preprocess.audio
    lead = (batch,) if preprocess.frames == 1 else (batch, preprocess.frames)
    audio = torch.zeros(*lead, 1, a.n_mels, a.n_frames) if logmel else torch.zeros(*lead, a.clip_samples)
    return torch.zeros(*lead, 3, s, s), audio, torch.ones(lead), torch.ones(lead)


class AVModel(nn.Module):
    """Classifies an (image, raw waveform) pair; either modality may be marked absent.

    Inputs are what ``edgemm.data.preprocess`` produces: ``image`` (B, 3, S, S) normalised RGB,
    ``audio`` (B, clip_samples) mono waveform, and optional presence flags (B,) of 1.0 / 0.0.
    An absent modality's embedding is replaced by a learned "missing" embedding (and attention
    fusion masks it out), which is how the runtime runs with a muted mic or covered camera.

    Args:
        num_classes: Output classes.
        image_encoder: Name in ``IMAGE_ENCODERS``.
        audio_encoder: Name in ``AUDIO_ENCODERS``.
        fusion: A ``FusionType`` value.
        fusion_dim: Width of the fused embedding.
        image_encoder_kw: Extra arguments of the image encoder (e.g. ``width``, ``pretrained``).
        audio_encoder_kw: Extra arguments of the audio encoder (e.g. ``channels``).
        fusion_kw: Extra arguments of the fusion block (e.g. ``heads``, ``layers``).
        dropout: Dropout in the fusion block and before the head.
        spec_augment: Mask time/frequency bands of the log-mel while training.
        preprocess: The preprocessing config (or its dict); it also configures the frontend.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        image_encoder: str = "mobilenetv3_small",
        audio_encoder: str = "cnn_small",
        fusion: FusionType | str = FusionType.GATED,
        fusion_dim: int = 128,
        image_encoder_kw: Mapping[str, Any] | None = None,
        audio_encoder_kw: Mapping[str, Any] | None = None,
        fusion_kw: Mapping[str, Any] | None = None,
        dropout: float = 0.1,
        spec_augment: bool = True,
        preprocess: PreprocessConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.preprocess = preprocess if isinstance(preprocess, PreprocessConfig) else PreprocessConfig.from_dict(preprocess)
        self.num_classes = num_classes
        self.frontend = LogMelFrontend(self.preprocess.audio)
        self.spec_augment = SpecAugment() if spec_augment else nn.Identity()
        self.image_norm = ImageStandardize() if self.preprocess.image.standardize else nn.Identity()
        self.image_encoder_name = image_encoder
        self.image_encoder = create_image_encoder(image_encoder, **dict(image_encoder_kw or {}))
        self.audio_encoder = create_audio_encoder(
            audio_encoder, n_mels=self.preprocess.audio.n_mels, **dict(audio_encoder_kw or {})
        )
        di, da = self.image_encoder.out_dim, self.audio_encoder.out_dim
        self.missing_image = nn.Parameter(torch.zeros(di))
        self.missing_audio = nn.Parameter(torch.zeros(da))
        self.fusion = create_fusion(
            fusion, di, da, dim=fusion_dim, num_classes=num_classes, dropout=dropout, **dict(fusion_kw or {})
        )
        if self.fusion.produces_logits:
            self.head: nn.Module = nn.Identity()
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.fusion.out_dim, num_classes))

    def pruning_hints(self) -> PruningHints:
        """The head keeps its classes; the missing-modality embeddings follow their encoder's width.
        (The encoders and the fusion block declare their own.)"""
        return PruningHints(keep=[] if self.fusion.produces_logits else [self.head],
                            unwrapped=[(self.missing_image, 0), (self.missing_audio, 0)])

    def forward_features(
        self,
        image: torch.Tensor,
        audio: torch.Tensor,
        image_present: torch.Tensor | None = None,
        audio_present: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Returns the per-modality embeddings (after missing-substitution) and the fused one."""
        b = image.shape[0]
        ones = torch.ones(b, 1, dtype=image.dtype, device=image.device)
        mi = ones if image_present is None else image_present.reshape(b, 1).to(image.dtype)
        ma = ones if audio_present is None else audio_present.reshape(b, 1).to(image.dtype)
        zi = self.image_encoder(self.image_norm(image))
        za = self.audio_encoder(self.spec_augment(self.frontend(audio)))
        zi = mi * zi + (1.0 - mi) * self.missing_image
        za = ma * za + (1.0 - ma) * self.missing_audio
        return {"image": zi, "audio": za, "fused": self.fusion(zi, za, mi, ma)}

    def forward(
        self,
        image: torch.Tensor,
        audio: torch.Tensor,
        image_present: torch.Tensor | None = None,
        audio_present: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns class logits (B, num_classes)."""
        return self.head(self.forward_features(image, audio, image_present, audio_present)["fused"])

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return example_inputs(self.preprocess, batch, logmel=takes_logmel(self))
