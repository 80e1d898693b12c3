"""A complete model file for edgemm (docs/models.md): a small image CNN and a 1-D waveform CNN,
fused by concatenation, honouring the presence flags. Use it as

    edgemm check docs/examples/my_av_model.py:build
    edgemm train --model docs/examples/my_av_model.py:build --data my_set.csv
    edgemm compress --student docs/examples/my_av_model.py:build --data my_set.csv
"""

import torch
from torch import nn


class MyAVModel(nn.Module):
    # What edgemm feeds it; every key not given keeps edgemm's default (docs/data-formats.md).
    preprocess = {"image": {"size": 64}, "audio": {"sample_rate": 16000, "clip_seconds": 1.0}}

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.audio = nn.Sequential(
            nn.Conv1d(1, width, 400, stride=160), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, 2 * width, 3, stride=2), nn.BatchNorm1d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten())
        # What the model uses when a modality is absent (covered camera, muted microphone).
        self.missing_image = nn.Parameter(torch.zeros(2 * width))
        self.missing_audio = nn.Parameter(torch.zeros(2 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, image, audio, image_present, audio_present):
        mi, ma = image_present.view(-1, 1), audio_present.view(-1, 1)
        zi = mi * self.image(image) + (1 - mi) * self.missing_image
        za = ma * self.audio(audio.unsqueeze(1)) + (1 - ma) * self.missing_audio
        return self.head(torch.cat([zi, za], dim=1))


def build(num_classes: int = 10, width: int = 32) -> nn.Module:
    return MyAVModel(num_classes, width)
