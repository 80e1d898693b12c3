"""Temporal models: the fused embeddings of the last K frames, into a causal temporal convolution.

A frame model answers from the newest frame and the audio window that ends at it; a word said two
seconds ago is gone from its inputs. ``TemporalAVModel`` runs its frame model on each of the last K
frames (each with its own audio window); a depthwise convolution over those K fused embeddings,
added to the newest frame's, feeds the classifier:

    image (B, K, 3, S, S), audio (B, K, samples) -> frontend, encoders, fusion per frame -> (B, K, D)
        -> depthwise Conv1d(kernel K) + newest -> LayerNorm -> head -> logits (B, classes)

K is ``preprocess.frames``, so every stage learns it from the preprocessing it already reads:
training cuts K consecutive frames from a video folder's clips (``edgemm.data.video.frame_window``),
export traces the time axis, and the runtime keeps the last K preprocessed frames. The frame model's
modules keep ``AVModel``'s names (``frontend``, ``image_encoder``, ``fusion``, ``head``...), so export
(frontend outside the graph, float scopes), pruning and distillation treat both alike. Presence flags
are per frame, (B, K), or per sample, (B,), which then holds for the whole window.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from edgemm.data.preprocess import PreprocessConfig
from edgemm.models.av import AVModel, example_inputs
from edgemm.models.frontend import takes_logmel


class TemporalAVModel(AVModel):
    """Classifies the last K frames and their audio windows.

    Args:
        frames: K, the frames in the window (2 or more; default: ``preprocess.frames`` when that is
            more than 1, else 4).
        frame_stride: Frames from one window frame to the next at the stream's frame rate (default:
            ``preprocess.frame_stride``).
        frame_rate: The frame rate the stride counts at (``PreprocessConfig.frame_rate``; ``edgemm
            train`` sets it to its video folder's rate; default: ``preprocess.frame_rate``).
        **kwargs: ``AVModel``'s arguments (its fusion must give an embedding: not ``late``).
    """

    def __init__(self, *, frames: int | None = None, frame_stride: int | None = None, frame_rate: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        given = self.preprocess
        if frames is None:
            frames = given.frames if given.frames > 1 else 4
        elif given.frames not in (1, frames):
            raise ValueError(f"frames={frames} but preprocess.frames={given.frames}")
        if frame_stride is None:
            frame_stride = given.frame_stride
        elif given.frame_stride not in (1, frame_stride):
            raise ValueError(f"frame_stride={frame_stride} but preprocess.frame_stride={given.frame_stride}")
        if frames < 2:
            raise ValueError(f"a temporal model sees 2 frames or more, got frames={frames}")
        if self.fusion.produces_logits:
            raise ValueError("a temporal model needs a fusion that gives an embedding, not late fusion's logits")
        self.frames = frames
        self.preprocess = PreprocessConfig(image=given.image, audio=given.audio, frames=frames, frame_stride=frame_stride,
                                           frame_rate=given.frame_rate if frame_rate is None else frame_rate)
        dim = self.fusion.out_dim
        self.temporal = nn.Conv1d(dim, dim, kernel_size=frames, groups=dim)
        self.temporal_norm = nn.LayerNorm(dim)

    def forward_features(
        self,
        image: torch.Tensor,
        audio: torch.Tensor,
        image_present: torch.Tensor | None = None,
        audio_present: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The newest frame's per-modality embeddings, and the window's fused embedding."""
        b, k = image.shape[:2]
        flat = super().forward_features(image.flatten(0, 1), audio.flatten(0, 1),
                                        _per_frame(image_present, b, k), _per_frame(audio_present, b, k))
        fused = flat["fused"].reshape(b, k, -1)
        window = self.temporal(fused.transpose(1, 2)).squeeze(-1)
        newest = {name: flat[name].reshape(b, k, -1)[:, -1] for name in ("image", "audio")}
        return {**newest, "fused": self.temporal_norm(window + fused[:, -1])}


def window_flags(flags: torch.Tensor, lead: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Presence flags shaped ``lead`` ((B,) or a window's (B, K)): per-sample (B,) flags spread over K."""
    return flags.reshape(-1, *[1] * (len(lead) - 1)).expand(lead) if flags.dim() < len(lead) else flags


def newest_flags(flags: torch.Tensor) -> torch.Tensor:
    """Per-sample presence flags (B,) from (B,) flags or a window's (B, K): the newest frame's."""
    return flags[:, -1] if flags.dim() == 2 else flags


def _per_frame(flags: torch.Tensor | None, b: int, k: int) -> torch.Tensor | None:
    """(B,) or (B, K) presence flags as (B*K,)."""
    return None if flags is None else window_flags(flags, (b, k)).reshape(b * k)


class NewestFrame(nn.Module):
    """A frame model fed a temporal model's windows: it answers for each window's newest frame (a
    frame teacher distilling into a temporal student, on the student's batches).

    Args:
        model: The frame model (``preprocess.frames`` 1).
        windows: The temporal model's preprocessing: the windows it will be given.
    """

    def __init__(self, model: nn.Module, windows: PreprocessConfig) -> None:
        super().__init__()
        self.model = model
        self.preprocess = dataclasses.replace(windows, image=model.preprocess.image, audio=model.preprocess.audio)

    @property
    def head(self) -> nn.Module:
        return self.model.head

    @property
    def forward_features(self):
        """The frame model's ``forward_features`` on the newest frames (absent when it has none)."""
        features = self.model.forward_features
        return lambda image, audio, image_present=None, audio_present=None: features(
            *_newest(image, audio, image_present, audio_present))

    def forward(self, image, audio, image_present=None, audio_present=None) -> torch.Tensor:
        return self.model(*_newest(image, audio, image_present, audio_present))

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return example_inputs(self.preprocess, batch, logmel=takes_logmel(self.model))


def _newest(image: torch.Tensor, audio: torch.Tensor, *flags: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """A window's newest frame: inputs (B, K, ...) as (B, ...); flags (B, K) as (B,), (B,) as they are."""
    return (image[:, -1], audio[:, -1], *(None if f is None else newest_flags(f) for f in flags))
