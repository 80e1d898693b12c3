"""Image and audio branches. Each maps its input to a flat embedding of ``out_dim`` features."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from edgemm.models.panns import VARIANTS, PannsCNN
from edgemm.models.pretrained import TORCHVISION_ARCH, is_file_spec, load_state_file, resolve_hub_model, resolve_weights
from edgemm.models.pruning_hints import PruningHints
from edgemm.registry import Registry

# Factories called with keyword arguments; they return a module with an ``out_dim`` attribute.
# Image encoders take a normalised (B, 3, H, W) image; audio encoders a (B, 1, mels, frames) log-mel
# and are called with ``n_mels=``.
IMAGE_ENCODERS: Registry[Callable[..., nn.Module]] = Registry("image encoder", group="edgemm.image_encoders")
AUDIO_ENCODERS: Registry[Callable[..., nn.Module]] = Registry("audio encoder", group="edgemm.audio_encoders")


class ImageEncoder(nn.Module):
    """A torchvision backbone without its classifier: features -> global average pool."""

    def __init__(self, features: nn.Module, out_dim: int) -> None:
        super().__init__()
        # torchvision's MobileNetV3 uses BatchNorm momentum 0.01, tuned for ImageNet's ~5000 steps
        # per epoch; on small data sets the running statistics then lag for hundreds of steps and
        # eval-mode outputs are garbage. PyTorch's default 0.1 tracks them within a few dozen steps.
        for m in features.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Loads a local torchvision/timm-style state dict into a full torchvision classifier.

    Classifier weights (``classifier.*`` / ``fc.*``) are ignored, a ``module.``/``model.`` prefix
    from DDP or wrappers is stripped, and every backbone weight must match
    (``edgemm.models.pretrained.load_state_file``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If backbone weights are missing or have the wrong shape (e.g. another width).
    """
    load_state_file(model, path, skip=("classifier.", "fc."),
                    what="this backbone; was it saved for another architecture or width?")


def _torchvision(name: str, pretrained: str | None, **kw) -> nn.Module:
    """The torchvision classifier behind encoder ``name``, with ``pretrained`` weights loaded if given."""
    import torchvision.models

    arch = TORCHVISION_ARCH[name]
    m = torchvision.models.get_model(arch, weights=None, **kw)
    if pretrained:
        load_pretrained(m, resolve_weights(arch, pretrained))
    return m


def _mobilenet(name: str, width: float, pretrained: str | None) -> ImageEncoder:
    m = _torchvision(name, pretrained, width_mult=width)
    return ImageEncoder(m.features, m.features[-1].out_channels)


@IMAGE_ENCODERS.register("mobilenetv3_small")
def mobilenetv3_small(*, width: float = 1.0, pretrained: str | None = None) -> ImageEncoder:
    """MobileNetV3-small features; ``pretrained``: a local state-dict file or a torchvision weights name."""
    return _mobilenet("mobilenetv3_small", width, pretrained)


@IMAGE_ENCODERS.register("mobilenetv3_large")
def mobilenetv3_large(*, width: float = 1.0, pretrained: str | None = None) -> ImageEncoder:
    """MobileNetV3-large features; ``pretrained`` as for ``mobilenetv3_small``."""
    return _mobilenet("mobilenetv3_large", width, pretrained)


def _resnet(name: str, pretrained: str | None) -> ImageEncoder:
    m = _torchvision(name, pretrained)
    features = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
    return ImageEncoder(features, m.fc.in_features)


@IMAGE_ENCODERS.register("resnet18")
def resnet18(*, pretrained: str | None = None) -> ImageEncoder:
    """ResNet-18 features; ``pretrained`` as for ``mobilenetv3_small``."""
    return _resnet("resnet18", pretrained)


@IMAGE_ENCODERS.register("resnet50")
def resnet50(*, pretrained: str | None = None) -> ImageEncoder:
    """ResNet-50 features; ``pretrained`` as for ``mobilenetv3_small``."""
    return _resnet("resnet50", pretrained)


def conv_block(c_in: int, c_out: int, *, stride: int = 1, separable: bool = False) -> list[nn.Module]:
    """3x3 conv-BN-ReLU, or its depthwise-separable form (3x3 depthwise-BN-ReLU, 1x1 conv-BN-ReLU).

    The separable form costs ``9 c_in + c_in c_out`` MACs a pixel instead of ``9 c_in c_out``: about
    8x less from 64 channels on, the MobileNetV1 / DS-CNN (keyword spotting) building block.
    """
    if not separable:
        return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True)]
    return [nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class PlainCNN(nn.Module):
    """A VGG-style image CNN: a stride-2 stem, then blocks of 3x3 conv-BN-ReLU and 2x2 max-pool.

    Plain convolutions and max-pooling learn from a few hundred images without pretraining, where
    MobileNetV3's depthwise, squeeze-excite blocks barely move in the same number of steps
    (measured on a real small set, benchmarks/HISTORY.md "Real small data").

    Args:
        channels: Output channels of the stem and of each block after it.
        separable: Depthwise-separable blocks after the (full) stem convolution (``conv_block``).
        convs_per_block: Convolutions in each block after the stem.
    """

    def __init__(self, *, channels: Sequence[int] = (32, 64, 128, 192), separable: bool = False,
                 convs_per_block: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(channels):
            for _ in range(1 if i == 0 else convs_per_block):
                layers += conv_block(c_in, c, stride=2 if i == 0 else 1, separable=separable and i > 0)
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


@IMAGE_ENCODERS.register("cnn_small")
def cnn_small(*, channels: Sequence[int] = (32, 64, 128, 192), pretrained: str | None = None) -> PlainCNN:
    """``PlainCNN``; ``pretrained`` is a local state-dict file of the same architecture."""
    return _plain("cnn_small", channels, pretrained)


@IMAGE_ENCODERS.register("cnn_large")
def cnn_large(*, channels: Sequence[int] = (64, 128, 256, 384), pretrained: str | None = None) -> PlainCNN:
    """``PlainCNN`` twice as wide as ``cnn_small`` (the teacher's image branch); ``pretrained`` as there."""
    return _plain("cnn_large", channels, pretrained)


@IMAGE_ENCODERS.register("dscnn_small")
def dscnn_small(*, channels: Sequence[int] = (32, 64, 128, 256), convs_per_block: int = 1,
                pretrained: str | None = None) -> PlainCNN:
    """``PlainCNN`` with depthwise-separable blocks; ``pretrained`` as for ``cnn_small``."""
    return _plain("dscnn_small", channels, pretrained, separable=True, convs_per_block=convs_per_block)


def _plain(name: str, channels: Sequence[int], pretrained: str | None, **kw) -> PlainCNN:
    m = PlainCNN(channels=channels, **kw)
    if pretrained:
        if not is_file_spec(pretrained):
            raise ValueError(f"{name} has no published weights named {pretrained!r}: give a local state-dict file, "
                             "or for ImageNet weights a model with a torchvision image encoder (av_student_mnv3, av_teacher_resnet18)")
        load_pretrained(m, pretrained)
    return m


class HubImageEncoder(nn.Module):
    """A Hugging Face transformers vision backbone (``AutoModel``): its pooled output as the embedding.

    Convolutional backbones (ResNet, ConvNeXt, MobileNetV2, EfficientNet, RegNet …) pool to
    ``(B, C[, 1, 1])``; transformers without a pooler give the mean of their last hidden states.

    Args:
        model: A hub id (``microsoft/resnet-18``) or a local ``save_pretrained`` directory,
            resolved offline from the cache when it is there (``edgemm.models.pretrained``).
        weights: Load the pretrained weights (False: the same architecture, randomly initialised,
            which is how a checkpoint that already holds trained weights is rebuilt).
    """

    def __init__(self, *, model: str, weights: bool = True) -> None:
        super().__init__()
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError:
            raise ImportError("Hugging Face backbones need transformers: pip install 'edgemm[hub]'") from None

        path = resolve_hub_model(model)
        self.backbone = AutoModel.from_pretrained(path) if weights else AutoModel.from_config(
            AutoConfig.from_pretrained(path))
        with torch.no_grad():
            self.out_dim = self(torch.zeros(1, 3, 64, 64)).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        return out.last_hidden_state.mean(dim=1) if pooled is None else pooled.flatten(1)


IMAGE_ENCODERS.register("hf", HubImageEncoder)


class AudioCNN(nn.Module):
    """A VGG-style CNN on log-mel: blocks of 3x3 conv-BN-ReLU, 2x2 max-pool, global average pool.

    Args:
        n_mels: Mel bands of the input (normalised per band by a BatchNorm first).
        channels: Output channels of each block.
        convs_per_block: 3x3 convolutions in each block.
        separable: Depthwise-separable convolutions after the first (``conv_block``).
    """

    def __init__(self, *, n_mels: int, channels: Sequence[int] = (16, 32, 64, 128), convs_per_block: int = 1,
                 separable: bool = False) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(n_mels)
        layers: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(channels):
            for _ in range(convs_per_block):
                layers += conv_block(c_in, c, separable=separable and c_in > 1)
                c_in = c
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = c_in

    def pruning_hints(self) -> PruningHints:
        """``bn0`` normalises mel bands, not channels: its width is the frontend's."""
        return PruningHints(keep=[self.bn0])

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        # (B, 1, mels, frames): normalise each mel band with its own running statistics.
        x = self.bn0(logmel.transpose(1, 2)).transpose(1, 2)
        return self.pool(self.body(x)).flatten(1)


@AUDIO_ENCODERS.register("cnn_small")
def audio_cnn_small(*, n_mels: int, channels: Sequence[int] = (16, 32, 64, 128)) -> AudioCNN:
    return AudioCNN(n_mels=n_mels, channels=channels)


@AUDIO_ENCODERS.register("cnn_medium")
def audio_cnn_medium(*, n_mels: int, channels: Sequence[int] = (32, 64, 128, 256)) -> AudioCNN:
    return AudioCNN(n_mels=n_mels, channels=channels)


@AUDIO_ENCODERS.register("cnn_large")
def audio_cnn_large(*, n_mels: int, channels: Sequence[int] = (32, 64, 128, 256)) -> AudioCNN:
    return AudioCNN(n_mels=n_mels, channels=channels, convs_per_block=2)


@AUDIO_ENCODERS.register("dscnn_small")
def audio_dscnn_small(*, n_mels: int, channels: Sequence[int] = (32, 64, 128, 128)) -> AudioCNN:
    """``AudioCNN`` with depthwise-separable convolutions: a DS-CNN, the keyword-spotting network."""
    return AudioCNN(n_mels=n_mels, channels=channels, separable=True)


for _name in VARIANTS:  # PANNs CNNs: AudioSet-pretrained weights from a local file or the hub cache
    AUDIO_ENCODERS.register(_name, functools.partial(PannsCNN, _name))


def create_image_encoder(name: str, **kw) -> nn.Module:
    return IMAGE_ENCODERS.get(name)(**kw)


def create_audio_encoder(name: str, **kw) -> nn.Module:
    return AUDIO_ENCODERS.get(name)(**kw)
