"""Models written the way a user would, outside edgemm's zoo, for the bring-your-own-model tests.

Each factory takes ``num_classes`` and returns a plain ``nn.Module``. ``av_models.yaml`` beside this
file declares their preprocessing (a 64 px image, as in the test data).
"""

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


class ResNetWaveform(nn.Module):
    """A torchvision ResNet image branch and a 1-D convolutional branch on the raw waveform, with
    presence flags: an absent modality's embedding is replaced by a learned one."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        resnet = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
        resnet.fc = nn.Identity()
        self.image = resnet  # (B, 512)
        self.audio = nn.Sequential(
            nn.Conv1d(1, 16, 64, stride=16), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 32, 8, stride=4), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 64, 8, stride=4), nn.BatchNorm1d(64), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.missing_image = nn.Parameter(torch.zeros(512))
        self.missing_audio = nn.Parameter(torch.zeros(64))
        self.classifier = nn.Linear(512 + 64, num_classes)

    def forward(self, image, audio, image_present, audio_present):
        zi = self.image(image)
        za = self.audio(audio.unsqueeze(1))
        mi, ma = image_present.view(-1, 1), audio_present.view(-1, 1)
        zi = mi * zi + (1 - mi) * self.missing_image
        za = ma * za + (1 - ma) * self.missing_audio
        return self.classifier(torch.cat([zi, za], dim=1))


def resnet_waveform(num_classes: int = 10) -> nn.Module:
    return ResNetWaveform(num_classes)


class NoFlags(nn.Module):
    """Image and waveform only: edgemm feeds an absent modality as zeros."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.audio = nn.Sequential(nn.Conv1d(1, 16, 400, stride=160), nn.BatchNorm1d(16), nn.ReLU(),
                                   nn.AdaptiveAvgPool1d(1), nn.Flatten())
        # A learned weight per embedding channel of each modality. (Without an op between the pooled
        # embeddings and the concat, torch-pruning 1.6.1 mis-indexes the concat: `edgemm check`
        # reports that at the prune stage; docs/models.md.)
        self.image_gain = nn.Parameter(torch.ones(32))
        self.audio_gain = nn.Parameter(torch.ones(16))
        self.head = nn.Linear(48, num_classes)

    def forward(self, image, audio):
        zi = self.image(image) * self.image_gain
        za = self.audio(audio.unsqueeze(1)) * self.audio_gain
        return self.head(torch.cat([zi, za], dim=1))


def no_flags(num_classes: int = 10) -> nn.Module:
    return NoFlags(num_classes)


class LogMelNet(nn.Module):
    """Takes edgemm's log-mel (B, 1, mels, frames) instead of the waveform."""

    audio_input = "logmel"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten())
        self.audio = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.image_gain = nn.Parameter(torch.ones(16))
        self.audio_gain = nn.Parameter(torch.ones(16))
        self.head = nn.Linear(32, num_classes)

    def forward(self, image, logmel):
        return self.head(torch.cat([self.image(image) * self.image_gain, self.audio(logmel) * self.audio_gain], dim=1))


def logmel_net(num_classes: int = 10) -> nn.Module:
    return LogMelNet(num_classes)


class DataDependent(nn.Module):
    """Branches on a tensor's value: fine in eager PyTorch, not capturable as a graph."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, image, audio):
        pooled = image.mean(dim=(2, 3))
        if audio.abs().sum() > 0:  # the line `edgemm check` must point at
            pooled = pooled * 2
        return self.head(pooled)


def data_dependent(num_classes: int = 10) -> nn.Module:
    return DataDependent(num_classes)


def not_a_module(num_classes: int = 10):
    return "a string"


class Bessel(nn.Module):
    """Uses an operator the exporters have no conversion for (torch.special.bessel_j0)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, image, audio):
        return self.head(torch.special.bessel_j0(image.mean(dim=(2, 3))))


def bessel(num_classes: int = 10) -> nn.Module:
    return Bessel(num_classes)


class PlainConcat(nn.Module):
    """Two pooled branches concatenated straight into the classifier: DepGraph pruning in
    torch-pruning 1.6.1 mis-indexes this concat, and `edgemm check` must say so at the prune stage."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten())
        self.audio = nn.Sequential(nn.Conv1d(1, 16, 400, stride=160), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(32, num_classes)

    def forward(self, image, audio):
        return self.head(torch.cat([self.image(image), self.audio(audio.unsqueeze(1))], dim=1))


def plain_concat(num_classes: int = 10) -> nn.Module:
    return PlainConcat(num_classes)
