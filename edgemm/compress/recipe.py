"""Compression recipes: an ordered list of stages, each with its own config dataclass.

A recipe is YAML, parsed by ``edgemm.safeio.load_yaml`` (safe and bounded). Unknown keys, values of
the wrong type, unknown stage types and invalid enum values are errors that name the key and list
what is valid; nothing is guessed or auto-corrected.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from importlib import import_module, resources
from pathlib import Path
from typing import Any, Callable, Mapping

from edgemm.config import check_keys, check_types, parse_enum
from edgemm.registry import Registry
from edgemm.safeio import load_yaml, read_text
from edgemm.train.config import TrainConfig, schedule_steps
from edgemm.train.policies import DEFAULT_POLICY, AugmentPolicy
from edgemm.vocab import Arithmetic, Int8Scheme


class StageType(str, enum.Enum):
    """The built-in stages (``STAGES`` holds them and any registered by users or plug-ins)."""

    DISTILL = "distill"
    PRUNE = "prune"
    QAT = "qat"
    PTQ = "ptq"


class Importance(str, enum.Enum):
    MAGNITUDE = "magnitude"  # L2 norm of each channel group's weights
    TAYLOR = "taylor"  # first-order Taylor: |weight x gradient| on a few batches
    BN_SCALE = "bn_scale"  # |gamma| of the BatchNorm after each conv


class TeacherOutputMode(str, enum.Enum):
    """When the teacher's outputs are computed (``edgemm.compress.teacher_outputs``)."""

    AUTO = "auto"  # cached for a zero-shot (foundation-model) teacher, online for any other
    ONLINE = "online"  # the teacher runs on every augmented batch
    CACHED = "cached"  # once per sample and presence pattern, on un-augmented inputs, cached on disk

    def resolve(self, zero_shot: bool) -> "TeacherOutputMode":
        if self is TeacherOutputMode.AUTO:
            return TeacherOutputMode.CACHED if zero_shot else TeacherOutputMode.ONLINE
        return self


def _epochs(epochs: int, steps_per_epoch: int, min_steps: int) -> int:
    """Epochs the training loop runs for this stage (``edgemm.train.config.schedule_steps``)."""
    return schedule_steps(epochs, max(steps_per_epoch, 1), min_steps)[1]


def _steps(where: str, **values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{where}.{name} must be a whole number >= 0, got {v!r}")


def _positive(where: str, **values: float) -> None:
    for name, v in values.items():
        if v is not None and not v > 0:
            raise ValueError(f"{where}.{name} must be positive, got {v!r}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from the teacher.

    Attributes:
        epochs: Training epochs on a large set.
        min_steps: At least this many optimiser steps (small sets get more epochs).
        lr: Peak AdamW learning rate.
        temperature: Softmax temperature of the KL term (which is scaled by T²).
        alpha: Weight of the KL term; the cross-entropy term gets ``1 - alpha``.
        feature_weight: Weight of the feature terms (image, audio and fused embeddings through
            learned projections to the teacher's widths, cosine distance).
        modality_dropout: Probability a sample loses one modality (teacher sees the same).
        window_mix: Probability a temporal student's window takes its older frames from another
            sample (``edgemm.train.augment.window_mix``; the teacher sees the same window).
        mixup: Beta concentration of mixup, both modalities mixed alike and the teacher shown the
            same mix (0: off).
        batch_size: Samples per step.
        augment: Augmentation policy (``edgemm.train.policies.AugmentPolicy``).
        label_smoothing: Label smoothing of the cross-entropy terms.
        unimodal_loss: Weight of the auxiliary per-modality classifiers (``edgemm.train.unimodal``),
            as in ``edgemm train``; without them a student's slower branch can stay at chance
            while the fused loss falls. 0, or a student without two encoders, disables them.
        weight_decay: AdamW weight decay (not applied to norms and biases).
        warm_lr: Peak learning rate instead of ``lr`` when the student starts from the teacher's
            weights (the same network: born-again distillation).
        cold_min_steps: At least this many optimiser steps when it does not (a teacher of another
            network): the student learns from nothing, as ``edgemm train``'s does (0: ``min_steps``).
    """

    epochs: int = 15
    min_steps: int = 0
    lr: float = 5e-3
    temperature: float = 4.0
    alpha: float = 0.7
    feature_weight: float = 1.0
    modality_dropout: float = 0.3
    window_mix: float = 0.5
    mixup: float = 0.0
    batch_size: int = 64
    augment: AugmentPolicy = DEFAULT_POLICY
    label_smoothing: float = 0.1
    unimodal_loss: float = 1.0
    weight_decay: float = 0.05
    warm_lr: float = 5e-4
    cold_min_steps: int = 0

    def __post_init__(self) -> None:
        check_types(self, "distill")
        object.__setattr__(self, "augment", parse_enum(AugmentPolicy, self.augment, "distill.augment"))
        if not 0 <= self.label_smoothing < 1 or self.unimodal_loss < 0 or self.weight_decay < 0:
            raise ValueError("distill: label_smoothing must be in [0, 1), unimodal_loss and weight_decay >= 0")
        if self.mixup < 0:
            raise ValueError(f"distill.mixup must be >= 0 (0 turns it off), got {self.mixup!r}")
        _steps("distill", min_steps=self.min_steps, cold_min_steps=self.cold_min_steps)
        _positive("distill", epochs=self.epochs, lr=self.lr, warm_lr=self.warm_lr, temperature=self.temperature,
                  batch_size=self.batch_size)
        if not all(0 <= v <= 1 for v in (self.alpha, self.modality_dropout, self.window_mix)) or self.feature_weight < 0:
            raise ValueError("distill: alpha, modality_dropout and window_mix must be in [0, 1], feature_weight >= 0")

    def training_epochs(self, steps_per_epoch: int) -> int:
        """Passes over the training set this stage gives the student (``steps_per_epoch``: of the data)."""
        return _epochs(self.epochs, steps_per_epoch, self.min_steps)

    def starting(self, warm: bool) -> DistillConfig:
        """The settings for a student that starts from the teacher's weights (``warm``) or from nothing."""
        if warm:  # a restart at the full peak would undo part of what the teacher learned
            return dataclasses.replace(self, lr=self.warm_lr)
        return dataclasses.replace(self, min_steps=max(self.min_steps, self.cold_min_steps))


@dataclass(frozen=True)
class PruneConfig:
    """Structured channel pruning with torch-pruning's dependency graph.

    Attributes:
        ratio: Fraction of channels removed from every prunable group (global default).
        image_ratio: Override for the image branch.
        audio_ratio: Override for the audio branch.
        fusion_ratio: Override for the fusion block.
        importance: How channels are ranked.
        global_pruning: Rank channels across layers instead of per layer.
        steps: Iterative steps to reach the ratio, each followed by fine-tuning.
        finetune_epochs: Distillation epochs after each step.
        finetune_min_steps: At least this many optimiser steps of fine-tuning after each step.
        round_to: Keep channel counts multiples of this (SIMD-friendly).
        lr: Peak fine-tuning learning rate. After pruning 40 % of the channels in one shot, 6
            epochs at 5e-3 recovered 1.7 pts more held-out accuracy than at 3e-3, and 3e-3 2.9 pts
            more than 1e-3 (benchmarks/HISTORY.md, "Prune settings").
    """

    ratio: float = 0.5
    image_ratio: float | None = None
    audio_ratio: float | None = None
    fusion_ratio: float | None = None
    importance: Importance = Importance.MAGNITUDE
    global_pruning: bool = False
    steps: int = 2
    finetune_epochs: int = 3
    finetune_min_steps: int = 0
    round_to: int = 8
    lr: float = 5e-3

    def __post_init__(self) -> None:
        check_types(self, "prune")
        object.__setattr__(self, "importance", parse_enum(Importance, self.importance, "prune.importance"))
        for name in ("ratio", "image_ratio", "audio_ratio", "fusion_ratio"):
            v = getattr(self, name)
            if v is not None and not 0 <= v < 1:
                raise ValueError(f"prune.{name} must be in [0, 1), got {v!r}")
        _steps("prune", finetune_min_steps=self.finetune_min_steps)
        _positive("prune", steps=self.steps, round_to=self.round_to, lr=self.lr)
        if self.finetune_epochs < 0:
            raise ValueError(f"prune.finetune_epochs must be >= 0, got {self.finetune_epochs}")

    def training_epochs(self, steps_per_epoch: int) -> int:
        """Passes over the training set this stage gives the student (fine-tuning after every step)."""
        return self.steps * _epochs(self.finetune_epochs, steps_per_epoch, self.finetune_min_steps) if self.finetune_epochs else 0


@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware fine-tuning to int8 (PT2E: per-channel weights, per-tensor activations).

    Attributes:
        epochs: Fine-tuning epochs with the distillation loss.
        min_steps: At least this many optimiser steps.
        lr: Learning rate.
        batch_size: Samples per step.
        quantizer: ``x86`` (the program runs as int8 on onnxruntime and OpenVINO) or ``xnnpack``
            (ExecuTorch lowers it directly, keeping the learned scales).
    """

    epochs: int = 2
    min_steps: int = 0
    lr: float = 5e-4
    batch_size: int = 64
    quantizer: Int8Scheme = Int8Scheme.X86

    def __post_init__(self) -> None:
        check_types(self, "qat")
        object.__setattr__(self, "quantizer", parse_enum(Int8Scheme, self.quantizer, "qat.quantizer"))
        _steps("qat", min_steps=self.min_steps)
        _positive("qat", epochs=self.epochs, lr=self.lr, batch_size=self.batch_size)

    def training_epochs(self, steps_per_epoch: int) -> int:
        """Passes over the training set this stage gives the student."""
        return _epochs(self.epochs, steps_per_epoch, self.min_steps)


@dataclass(frozen=True)
class PTQConfig:
    """Post-training int8 calibration (no training).

    Attributes:
        calibration_samples: Training samples used to calibrate activation ranges.
        quantizer: As for ``QATConfig``.
    """

    calibration_samples: int = 256
    quantizer: Int8Scheme = Int8Scheme.X86

    def __post_init__(self) -> None:
        check_types(self, "ptq")
        object.__setattr__(self, "quantizer", parse_enum(Int8Scheme, self.quantizer, "ptq.quantizer"))
        _positive("ptq", calibration_samples=self.calibration_samples)

    def training_epochs(self, steps_per_epoch: int) -> int:
        """Calibration only: no training."""
        return 0


@dataclass(frozen=True)
class StageSpec:
    """A compression stage: what its recipe entry parses into and what runs it.

    Attributes:
        config: A frozen dataclass of the stage's settings, with
            ``training_epochs(steps_per_epoch)`` (0 for a stage that does not train).
        run: ``run(student, ctx, config) -> StageOutput`` (``edgemm.compress.stages``), or its
            ``"module:function"`` name, imported when the stage runs (so recipes parse without torch).
        quantizes: The stage produces the int8 model; it must then be the recipe's last stage.
    """

    config: type
    run: Callable[..., Any] | str
    quantizes: bool = False

    def runner(self) -> Callable[..., Any]:
        if callable(self.run):
            return self.run
        module, _, name = self.run.partition(":")
        return getattr(import_module(module), name)


STAGES: Registry[StageSpec] = Registry("compress stage", group="edgemm.stages")
for _kind, _config, _quantizes in ((StageType.DISTILL, DistillConfig, False), (StageType.PRUNE, PruneConfig, False),
                                   (StageType.QAT, QATConfig, True), (StageType.PTQ, PTQConfig, True)):
    STAGES.register(_kind.value, StageSpec(_config, f"edgemm.compress.stages:run_{_kind.value}", _quantizes))


def register_stage(name: str, config: type, *, quantizes: bool = False):
    """Registers ``run(student, ctx, config) -> StageOutput`` as the stage ``type: name`` of recipes.

    Example:
        >>> @register_stage("sparsify", SparsifyConfig)
        ... def run_sparsify(student, ctx, cfg):
        ...     return StageOutput(student, extra={"sparsity": cfg.amount})
    """
    def deco(run: Callable[..., Any]) -> Callable[..., Any]:
        STAGES.register(name, StageSpec(config, run, quantizes))
        return run

    return deco


@dataclass(frozen=True)
class TeacherConfig:
    """How to get the teacher when none is given: train this registered model with ``edgemm train``.

    The teacher is trained by ``edgemm.train.train`` with ``edgemm train``'s own defaults
    (``edgemm.train.TrainConfig``); the fields left unset (null) keep them, so
    ``edgemm train --model M`` followed by ``edgemm compress --teacher runs/M/best.pt`` gives the
    same teacher as ``edgemm compress`` alone.

    Attributes:
        model: Registered model name. The default is the default student itself: on small data a
            larger network trained from scratch ends below it (benchmarks/README.md, "Compression
            that costs nothing"), so the student teaches its own pruned and int8 successors
            (born-again distillation, warm-started from the teacher's weights).
        epochs: Training epochs on a large set (null: ``edgemm train``'s).
        min_steps: At least this many optimiser steps (null: ``edgemm train``'s).
        lr: Peak learning rate (null: ``edgemm train``'s).
        precision: Arithmetic of the teacher's training and of its forward passes while it teaches:
            ``fp32``, ``bf16`` autocast, or ``auto`` = bf16 where the device computes it natively
            (AVX512-BF16/AMX CPUs, recent GPUs), else fp32 (null: ``edgemm train``'s, fp32). The
            student always trains in fp32.
        pretrained: Where the teacher's image encoder starts: ``auto`` (torchvision's ImageNet
            weights when they are in torch hub's local cache, else random), ``none``, a
            torchvision weights name, a local state-dict file, or ``hf:<hub id or directory>``
            for a Hugging Face vision backbone.
        clip: A zero-shot teacher instead of a trained one: the image–text model (CLIP family;
            hub id or local directory) scoring each class's ``image_prompt``
            (``edgemm.models.zeroshot``). With ``clap``, or alone.
        clap: The audio–text model (CLAP) of a zero-shot teacher, scoring ``audio_prompt``.
        image_prompt: Prompt per class for ``clip``; ``{label}`` is the class name.
        audio_prompt: Prompt per class for ``clap``.
        outputs: ``online`` runs the teacher on every augmented training batch; ``cached``
            computes its outputs once per sample on un-augmented inputs and caches them on disk
            (``edgemm.compress.teacher_outputs``); ``auto`` caches for a zero-shot teacher only.
    """

    model: str = "av_student"
    epochs: int | None = None
    min_steps: int | None = None
    lr: float | None = None
    precision: Arithmetic | None = None
    pretrained: str = "auto"
    clip: str | None = None
    clap: str | None = None
    image_prompt: str = "a photo of a {label}"
    audio_prompt: str = "the sound of a {label}"
    outputs: TeacherOutputMode = TeacherOutputMode.AUTO

    def __post_init__(self) -> None:
        check_types(self, "teacher")
        if self.precision is not None:
            object.__setattr__(self, "precision", parse_enum(Arithmetic, self.precision, "teacher.precision"))
        object.__setattr__(self, "outputs", parse_enum(TeacherOutputMode, self.outputs, "teacher.outputs"))
        if self.clip or self.clap:
            self.zero_shot()  # validates the prompts
        if not isinstance(self.pretrained, str) or not self.pretrained:
            raise ValueError(f"teacher.pretrained must be auto, none, a weights name or a file, got {self.pretrained!r}")
        if self.min_steps is not None:
            _steps("teacher", min_steps=self.min_steps)
        _positive("teacher", epochs=self.epochs, lr=self.lr)

    def train_config(self, **kw: Any) -> TrainConfig:
        """``edgemm train``'s configuration with this teacher's set fields (and ``kw``) applied."""
        own = {k: getattr(self, k) for k in ("epochs", "min_steps", "lr") if getattr(self, k) is not None}
        return TrainConfig(**own, precision=self.training_precision.value, **kw)

    @property
    def training_precision(self) -> Arithmetic:
        """The arithmetic the teacher trains and teaches in: the set one, else ``edgemm train``'s."""
        return self.precision if self.precision is not None else Arithmetic(TrainConfig().precision)

    def zero_shot(self):
        """The ``ZeroShotConfig`` when ``clip`` or ``clap`` is set, else None."""
        if not (self.clip or self.clap):
            return None
        from edgemm.models.zeroshot import ZeroShotConfig

        return ZeroShotConfig(self.clip, self.clap, self.image_prompt, self.audio_prompt)


ZERO_SHOT_KEYS = ("clip", "clap", "image_prompt", "audio_prompt")
# Teacher fields that do not change a trained teacher's weights (left out of its cache key).
NOT_TRAINING_KEYS = (*ZERO_SHOT_KEYS, "outputs")


@dataclass(frozen=True)
class Stage:
    """One entry of a recipe: a registered stage name (``STAGES``) and its parsed config."""

    type: str
    config: Any

    @property
    def spec(self) -> StageSpec:
        return STAGES.get(self.type)


@dataclass(frozen=True)
class Recipe:
    """A student, a teacher recipe and the ordered stages."""

    student: str = "av_student"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    stages: tuple[Stage, ...] = ()

    def __post_init__(self) -> None:
        types = [s.type for s in self.stages]
        if not types:
            raise ValueError("recipe.stages: at least one stage is needed")
        quant = [s.type for s in self.stages if s.spec.quantizes]
        if len(quant) > 1 or (quant and not self.stages[-1].spec.quantizes):
            raise ValueError(f"recipe.stages: at most one quantizing stage ({', '.join(quant)} given), "
                             "and it must be the last stage")

    @property
    def quantized(self) -> bool:
        """The last stage produces the int8 model."""
        return self.stages[-1].spec.quantizes

    def to_dict(self) -> dict[str, Any]:
        def plain(cfg: Any) -> dict[str, Any]:
            return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in dataclasses.asdict(cfg).items()}

        return {
            "student": self.student,
            "teacher": plain(self.teacher),
            "stages": [{"type": s.type, **plain(s.config)} for s in self.stages],
        }


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    check_keys(cls, data, where)
    try:
        return cls(**data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def parse_recipe(data: Mapping[str, Any], *, source: str = "recipe") -> Recipe:
    """Builds a recipe from plain data (what YAML gives).

    Raises:
        ValueError: Naming the stage and key on any unknown key, stage type or invalid value.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping with 'stages', got {type(data).__name__}")
    top = ["student", "teacher", "stages"]
    unknown = sorted(set(data) - set(top))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys are {top}")
    stages = []
    for i, raw in enumerate(data.get("stages") or []):
        where = f"{source}: stages[{i}]"
        if not isinstance(raw, Mapping) or "type" not in raw:
            raise ValueError(f"{where}: each stage needs a 'type', one of {STAGES.names()}")
        try:
            spec = STAGES.get(str(raw["type"]))
        except ValueError as e:
            raise ValueError(f"{where}.type: {e}") from None
        kind = str(raw["type"])
        cfg = _build(spec.config, {k: v for k, v in raw.items() if k != "type"}, f"{where} ({kind})")
        stages.append(Stage(kind, cfg))
    teacher = _build(TeacherConfig, data.get("teacher") or {}, f"{source}: teacher")
    return Recipe(student=str(data.get("student", "av_student")), teacher=teacher, stages=tuple(stages))


def load_recipe(path: str | Path | None = None) -> Recipe:
    """Loads a recipe file, or the default recipe shipped with the package when ``path`` is None."""
    if path is None:
        text, source = default_recipe_text(), "default recipe"
    else:
        text, source = read_text(path, "recipe"), str(path)
    return parse_recipe(load_yaml(text, source), source=source)


def default_recipe_text() -> str:
    return resources.files("edgemm.compress").joinpath("default_recipe.yaml").read_text()
