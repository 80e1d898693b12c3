"""Registered models: the teacher, the student, and tiny ``test_*`` variants of every fusion type."""

from __future__ import annotations

from typing import Any

from edgemm.models.av import AVModel
from edgemm.models.fusion import FusionType
from edgemm.models.registry import register_model
from edgemm.models.temporal import TemporalAVModel

# The full-size models standardise each image in their graph (``ImageConfig.standardize``).
_PREPROCESS = {"image": {"standardize": True}}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(base.get(k), dict) and isinstance(v, dict) else v
    return out


def _build(defaults: dict[str, Any], kwargs: dict[str, Any], cls: type[AVModel] = AVModel) -> AVModel:
    # Merged, so {"pretrained": ...} keeps the width and {"preprocess": {"image": {"size": 96}}} the rest;
    # another encoder starts from its own defaults, not this one's arguments.
    defaults = dict(defaults)
    for branch in ("image", "audio"):
        if kwargs.get(f"{branch}_encoder", defaults.get(f"{branch}_encoder")) != defaults.get(f"{branch}_encoder"):
            defaults.pop(f"{branch}_encoder_kw", None)
    cfg = _merge(_merge({"preprocess": _PREPROCESS}, defaults), kwargs)
    cfg.setdefault("num_classes", 10)
    return cls(**cfg)


# The teachers' fusion: two layers of cross-modal attention over 256-wide embeddings.
_TEACHER_FUSION = dict(fusion=FusionType.ATTENTION, fusion_dim=256, fusion_kw={"heads": 4, "layers": 2}, dropout=0.1)


@register_model
def av_teacher(**kwargs) -> AVModel:
    """Wide plain CNNs on both branches, two-layer cross-modal attention (2.9 M params, 163 M MACs).

    Trained from scratch on the user's data, so built like the student (plain convolutions learn
    from a few hundred samples) but twice as wide, with attention fusion. ``av_teacher_resnet18``
    is the teacher for a start from ImageNet weights.
    """
    return _build(dict(image_encoder="cnn_large", audio_encoder="cnn_medium", **_TEACHER_FUSION), kwargs)


@register_model
def av_teacher_resnet18(**kwargs) -> AVModel:
    """Large: ResNet-18 image branch, two-conv VGG audio CNN, two-layer cross-modal attention (13.6 M params)."""
    return _build(dict(image_encoder="resnet18", audio_encoder="cnn_large", **_TEACHER_FUSION), kwargs)


@register_model
def av_student(**kwargs) -> AVModel:
    """Compact: plain-CNN image branch, small audio CNN, gated fusion (0.50 M params).

    The image branch is a VGG-style CNN because the student usually trains from scratch on the
    user's data: on a real set of 800 samples MobileNetV3-small's image branch stayed at chance for
    a whole run where this one reached 0.5 (benchmarks/HISTORY.md "Real small data"). With ImageNet
    weights at hand, ``av_student_mnv3`` is the same student on MobileNetV3-small.
    """
    return _build(_STUDENT, kwargs)


_STUDENT = dict(image_encoder="cnn_small", audio_encoder="cnn_small", fusion=FusionType.GATED, fusion_dim=128)


@register_model
def av_student_temporal(**kwargs) -> TemporalAVModel:
    """``av_student`` on 4 frames 5 apart (the last second at 15 fps; ``frames``, ``frame_stride`` for
    another window), a depthwise temporal convolution over their fused embeddings
    (``edgemm.models.temporal``). Trains on video folders: each sample is K frames of a clip, each
    with its own audio window."""
    return _build(_STUDENT, {"frames": 4, "frame_stride": 5, **kwargs}, TemporalAVModel)


@register_model
def av_student_160(**kwargs) -> AVModel:
    """``av_student`` at a camera-like 160 px input instead of 64 px: the image branch costs 6x more,
    the size at which int8 has the most to save (benchmarks/int8.py)."""
    return _build(
        dict(image_encoder="cnn_small", audio_encoder="cnn_small", fusion=FusionType.GATED, fusion_dim=128,
             preprocess={"image": {"size": 160}}),
        kwargs,
    )


# The separable students: DS-CNN branches on both sides, av_student's gated fusion.
_DS_STUDENT = dict(image_encoder="dscnn_small", audio_encoder="dscnn_small", fusion=FusionType.GATED, fusion_dim=128)


@register_model
def av_student_ds(**kwargs) -> AVModel:
    """``av_student`` with depthwise-separable convolutions after the stems (``dscnn_small``): 40 % of
    its layer MACs, a third of its parameters.

    The student for a MAC budget: after the default recipe's pruning it computes 26x fewer layer MACs
    than ``av_teacher``, fused accuracy within 1-4 pts of ``av_student`` on the real sets but its
    image branch weaker alone (benchmarks/HISTORY.md "A student 25x below the teacher").
    """
    return _build(_DS_STUDENT, kwargs)


@register_model
def av_student_ds_wide(**kwargs) -> AVModel:
    """``av_student_ds`` with a 1.5x wider image branch (48-320 channels): 22.5x fewer layer MACs than
    ``av_teacher`` after the default recipe, and on the two real sets fused accuracy at or above
    ``av_student``'s with the image branch alone within one standard error of it (one run per set,
    benchmarks/HISTORY.md "A student 25x below the teacher")."""
    return _build(dict(_DS_STUDENT, image_encoder_kw={"channels": (48, 96, 192, 320)}), kwargs)


@register_model
def av_student_mnv3(**kwargs) -> AVModel:
    """``av_student`` on a MobileNetV3-small image branch, for a start from ImageNet weights (1.21 M params)."""
    return _build(
        dict(image_encoder="mobilenetv3_small", audio_encoder="cnn_small", fusion=FusionType.GATED, fusion_dim=128),
        kwargs,
    )


# Tiny variants for tests: every fusion type, small inputs, milliseconds per forward.
_TEST_PREPROCESS = {"image": {"size": 32, "standardize": True}, "audio": {"sample_rate": 8000, "clip_seconds": 0.5, "n_fft": 256,
                                                     "win_length": 200, "hop_length": 100, "n_mels": 24,
                                                     "f_max": 4000.0}}


def _tiny(fusion: FusionType, kwargs: dict[str, Any], cls: type[AVModel] = AVModel) -> AVModel:
    return _build(
        dict(
            image_encoder="mobilenetv3_small",
            image_encoder_kw={"width": 0.25},
            audio_encoder="cnn_small",
            audio_encoder_kw={"channels": (8, 16, 16)},
            fusion=fusion,
            fusion_dim=16,
            fusion_kw={"heads": 2} if fusion is FusionType.ATTENTION else None,
            preprocess=_TEST_PREPROCESS,
            num_classes=4,
        ),
        kwargs,
        cls,
    )


@register_model
def test_concat(**kwargs) -> AVModel:
    return _tiny(FusionType.CONCAT, kwargs)


@register_model
def test_weighted(**kwargs) -> AVModel:
    return _tiny(FusionType.WEIGHTED, kwargs)


@register_model
def test_gated(**kwargs) -> AVModel:
    return _tiny(FusionType.GATED, kwargs)


@register_model
def test_attention(**kwargs) -> AVModel:
    return _tiny(FusionType.ATTENTION, kwargs)


@register_model
def test_late(**kwargs) -> AVModel:
    return _tiny(FusionType.LATE, kwargs)


@register_model
def tiny_temporal(**kwargs) -> TemporalAVModel:
    """``test_gated`` over 3 frames, 2 apart."""
    return _tiny(FusionType.GATED, {"frames": 3, "frame_stride": 2, **kwargs}, TemporalAVModel)
