"""PANNs audio CNNs (Kong et al. 2020): audio branches with public AudioSet-pretrained weights.

``panns_cnn6`` / ``panns_cnn10`` / ``panns_cnn14`` rebuild the convolutional part of PANNs' ``Cnn6``,
``Cnn10`` and ``Cnn14`` with the published parameter names (``bn0``, ``conv_blockN.conv1`` …,
``fc1``), so the released checkpoints (``Cnn14_16k_mAP=0.438.pth`` and the like, from the PANNs
Zenodo record, or a Hugging Face mirror) load into them. PANNs' own STFT and mel layers are not
needed: edgemm's in-graph log-mel frontend (64 Slaney mel bands, 50–8000 Hz, hop 160 at 16 kHz by
default — the configuration of PANNs' 16 kHz models) feeds them, rescaled from natural log to the
decibels PANNs were trained on. The embedding is PANNs' own: mean over frequency, then max + mean
over time, then ``fc1`` and a ReLU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgemm.models.pretrained import load_state_file, resolve_weights_file
from edgemm.models.pruning_hints import PruningHints

DB_PER_NEPER = 10.0 / math.log(10.0)  # PANNs' log-mel is 10·log10(power); edgemm's frontend gives ln(power)
PANNS_MELS = 64

# family name -> (channels per block, convolutions per block, kernel size)
VARIANTS = {
    "panns_cnn6": ((64, 128, 256, 512), 1, 5),
    "panns_cnn10": ((64, 128, 256, 512), 2, 3),
    "panns_cnn14": ((64, 128, 256, 512, 1024, 2048), 2, 3),
}


class ConvBlock(nn.Module):
    """PANNs' block: one or two conv-BN-ReLU (``conv1``/``bn1``, ``conv2``/``bn2``), then average pooling."""

    def __init__(self, c_in: int, c_out: int, convs: int, kernel: int) -> None:
        super().__init__()
        self.convs = convs
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        if convs == 2:
            self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if self.convs == 2:
            x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool) if pool != (1, 1) else x


class PannsCNN(nn.Module):
    """A PANNs CNN on edgemm's log-mel, returning PANNs' ``fc1`` embedding.

    Args:
        variant: A key of ``VARIANTS``.
        n_mels: Mel bands of the frontend (64 to load published weights).
        pretrained: A local PANNs checkpoint, or ``hf:ORG/NAME/FILE`` in the Hugging Face cache.
        dropout: Dropout between blocks while training (PANNs used 0.2).
    """

    def __init__(self, variant: str, *, n_mels: int, pretrained: str | None = None, dropout: float = 0.2) -> None:
        super().__init__()
        channels, convs, kernel = VARIANTS[variant]
        self.variant, self.dropout = variant, dropout
        self.bn0 = nn.BatchNorm2d(n_mels)
        c_in = 1
        for i, c in enumerate(channels, start=1):
            setattr(self, f"conv_block{i}", ConvBlock(c_in, c, convs, kernel))
            c_in = c
        self.n_blocks = len(channels)
        self.fc1 = nn.Linear(c_in, c_in)
        self.out_dim = c_in
        if pretrained:
            if n_mels != PANNS_MELS:
                raise ValueError(f"{variant}: published PANNs weights expect {PANNS_MELS} mel bands, the model's "
                                 f"preprocessing has audio.n_mels={n_mels}")
            load_panns(self, resolve_weights_file(pretrained))

    def pruning_hints(self) -> PruningHints:
        """``bn0`` normalises mel bands, not channels: its width is the frontend's."""
        return PruningHints(keep=[self.bn0])

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        # edgemm: (B, 1, mels, frames), ln(power). PANNs: (B, 1, frames, mels), dB; bn0 per mel band.
        x = (logmel * DB_PER_NEPER).transpose(2, 3)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(1, self.n_blocks + 1):
            last = i == self.n_blocks
            x = getattr(self, f"conv_block{i}")(x, (1, 1) if last and self.n_blocks == 6 else (2, 2))
            x = F.dropout(x, self.dropout, self.training)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        return F.relu(self.fc1(F.dropout(x, 0.5, self.training)))


def load_panns(model: PannsCNN, path) -> None:
    """Loads a PANNs checkpoint (``{"model": state_dict}`` or a bare state dict) into ``model``.

    PANNs' STFT / mel layers and AudioSet classifier (``spectrogram_extractor``,
    ``logmel_extractor``, ``fc_audioset``) are left out; every other weight must match.

    Raises:
        ValueError: If a weight is missing or has another shape (another variant or sample rate).
    """
    load_state_file(model, path, skip=("spectrogram_extractor.", "logmel_extractor.", "fc_audioset."),
                    what=f"{model.variant} (PANNs files name their model: Cnn6 / Cnn10 / Cnn14)")
