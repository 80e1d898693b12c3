"""Where ``edgemm compress`` gets its teacher: a checkpoint, a model it trains and caches, a model
instance, or a zero-shot teacher from CLIP/CLAP; and the ``--student`` / ``--teacher`` choices
applied to a recipe."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgemm.compress.recipe import NOT_TRAINING_KEYS, Recipe
from edgemm.data import open_dataset
from edgemm.data.labels import count_labelled, labelled_only, with_label_fraction
from edgemm.models.contract import model_slug
from edgemm.models.pretrained import TORCHVISION_ARCH, available, image_start_kwargs
from edgemm.train.checkpoint import load_model


def teacher_cache_key(recipe: Recipe, data: str | Path, init: dict | None = None, labels_fraction: float = 1.0,
                      seed: int = 0) -> str:
    """Names a cached teacher by what it was trained on and how.

    The data's identity is the generator version and parameters for ``"default"``, the resolved
    path plus the file's content hash for a manifest, and the resolved path for a video folder. So
    a new generator version or an edited manifest trains a new teacher instead of reusing one
    trained on other data. The model's identity is its parameter names and shapes and its
    preprocessing, so a registered name whose architecture changed between edgemm versions does
    not reuse the old architecture's weights.
    """
    # A trained teacher's identity; the zero-shot fields (never trained, never cached) are left out.
    teacher = {k: v for k, v in recipe.to_dict()["teacher"].items() if k not in NOT_TRAINING_KEYS}
    key = {"data": data_identity(data), "teacher": teacher, "init": init or {},
           "architecture": architecture_fingerprint(recipe.teacher.model)}
    if labels_fraction != 1.0:  # (absent at 1.0, so caches made before the option stay valid)
        key["labels_fraction"] = labels_fraction
    if seed:  # (absent at 0 likewise)
        key["seed"] = seed
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def data_identity(data: str | Path) -> str:
    """The generator version and parameters for ``"default"``, the resolved path plus the file's
    content hash for a manifest, the resolved path for a video folder."""
    from edgemm.data.synthetic import SyntheticConfig

    if str(data) == "default":
        return SyntheticConfig().key()
    path = Path(data).resolve()
    identity = str(path)
    if path.is_file():
        identity += ":" + hashlib.sha1(path.read_bytes()).hexdigest()
    return identity


def architecture_fingerprint(model: str) -> str:
    """A hash of registered ``model``'s parameter and buffer shapes and its preprocessing."""
    from edgemm.models import create_model

    net = create_model(model)
    shapes = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    blob = json.dumps({"shapes": shapes, "preprocess": net.preprocess.to_dict()}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def teacher_init_kwargs(model: str, spec: str | None) -> dict:
    """Model kwargs that start ``model``'s image encoder from ``spec``.

    Args:
        model: Registered model name.
        spec: ``"auto"`` (torchvision's ``DEFAULT`` weights when they are already on this machine,
            else none), ``"none"`` / None, a weights name, a local file, or ``hf:<hub id or dir>``.

    Returns:
        Kwargs of ``edgemm.models.pretrained.image_start_kwargs``, or ``{}`` for none.
    """
    if spec is None or str(spec).lower() == "none":
        return {}
    if str(spec).lower() == "auto":
        from edgemm.models import create_model

        arch = TORCHVISION_ARCH.get(getattr(create_model(model), "image_encoder_name", ""), None)
        if arch is None or not available(arch, "DEFAULT"):
            return {}
        spec = "DEFAULT"
    return image_start_kwargs(str(spec))


def _given_teacher(teacher: nn.Module, data: str | Path, device) -> tuple[nn.Module, dict, str, float]:
    """A teacher passed as a module (Python API): labels from the data, identity from its weights."""
    preprocess = getattr(teacher, "preprocess", None)
    if preprocess is None or not hasattr(teacher, "example_inputs"):
        raise ValueError("a teacher module needs .preprocess and .example_inputs(batch): build it with "
                         "edgemm.models.create_model (a registered name or PATH.py:FUNCTION)")
    labels = open_dataset(data, preprocess, splits=("train",)).labels
    digest = hashlib.sha1()
    for k, v in sorted(teacher.state_dict().items()):
        digest.update(k.encode() + v.detach().cpu().numpy().tobytes())
    return teacher.to(device).eval(), {"labels": labels}, f"<{type(teacher).__name__} {digest.hexdigest()[:12]}>", 0.0


def _zero_shot_teacher(config, student: str, data: str | Path, device, log, labels_fraction: float
                       ) -> tuple[nn.Module, dict, str, float]:
    """A teacher from CLIP/CLAP and the class names, calibrated on the labelled training samples."""
    from edgemm.models import create_model
    from edgemm.models.zeroshot import ZeroShotTeacher, label_prompts

    t0 = time.perf_counter()
    preprocess = create_model(student, num_classes=2).preprocess
    train = open_dataset(data, preprocess, splits=("train",)).train
    teacher = ZeroShotTeacher(train.labels, preprocess, config)
    log(f"zero-shot teacher {config.describe()}; prompts {label_prompts(config, train.labels)}")
    labelled = with_label_fraction(train, labels_fraction)
    info: dict[str, Any] = {"config": dataclasses.asdict(config)}
    if count_labelled(labelled):
        info["calibration"] = teacher.calibrate(labelled_only(labelled))
        c = info["calibration"]
        log(f"zero-shot teacher calibrated on {c['samples']} labelled samples: train accuracy "
            f"{c['accuracy_before']:.3f} -> {c['accuracy_after']:.3f} (weights {c['weights']}, scale {c['scale']:.1f})")
    return teacher.to(device).eval(), {"labels": train.labels, "zero_shot": info}, \
        f"<zero-shot {config.describe()}>", time.perf_counter() - t0


def load_teacher(recipe: Recipe, teacher: str | Path | nn.Module | None, data: str | Path, device, log,
                 labels_fraction: float = 1.0, seed: int = 0) -> tuple[nn.Module, dict, Path | str, float]:
    """The teacher model, its checkpoint, its path, and the seconds spent training it now (0 if reused).

    A teacher trained here takes ``seed`` as ``edgemm train --seed`` does (and is cached per seed).
    """
    if isinstance(teacher, nn.Module):
        return _given_teacher(teacher, data, device)
    zero_shot = teacher if teacher is not None and not isinstance(teacher, (str, Path)) else recipe.teacher.zero_shot()
    if zero_shot is not None:
        return _zero_shot_teacher(zero_shot, recipe.student, data, device, log, labels_fraction)
    if teacher is not None:
        model, ckpt = load_model(teacher, map_location=str(device))
        return model, ckpt, Path(teacher), 0.0
    from edgemm.data.synthetic import default_cache_dir
    from edgemm.train import train

    init = teacher_init_kwargs(recipe.teacher.model, recipe.teacher.pretrained)
    key = teacher_cache_key(recipe, data, init, labels_fraction, seed)
    run = default_cache_dir() / "teachers" / f"{model_slug(recipe.teacher.model)}-{key}"
    seconds = 0.0
    if not (run / "summary.json").is_file():
        start = f", image encoder from {recipe.teacher.pretrained}" if init else ""
        config = recipe.teacher.train_config(device=str(device), labels_fraction=labels_fraction, seed=seed)
        log(f"training teacher {recipe.teacher.model} as edgemm train does ({config.epochs} epochs, at least "
            f"{config.min_steps} steps, lr {config.lr:g}, {config.precision}{start}) into {run}")
        t0 = time.perf_counter()
        # The random state is put back afterwards: the stages then run the same whether the teacher
        # was trained in this process or loaded (`edgemm train` then `compress --teacher CKPT`).
        with torch.random.fork_rng(devices=[]):
            train(recipe.teacher.model, data, out=run, resume=True, progress=False, model_kwargs=init, config=config)
        seconds = time.perf_counter() - t0
    else:
        log(f"reusing cached teacher {run / 'best.pt'}")
    model, ckpt = load_model(run / "best.pt", map_location=str(device))
    return model, ckpt, run / "best.pt", seconds


def with_models(recipe: Recipe, student: str | None, teacher) -> tuple[Recipe, Any]:
    """The recipe with ``--student`` and a ``--teacher`` that names a model (not a checkpoint) applied."""
    from edgemm.models import MODELS
    from edgemm.models.contract import canonical, is_reference
    from edgemm.models.zeroshot import ZeroShotConfig

    if student is not None and not isinstance(student, str):
        raise ValueError("student: give a registered name or PATH.py:FUNCTION (checkpoints rebuild the student "
                         "from it; a module instance cannot be rebuilt)")
    if student is not None:
        recipe = dataclasses.replace(recipe, student=canonical(student) if is_reference(student) else student)
    if isinstance(teacher, str) and ZeroShotConfig.looks_like(teacher):
        return recipe, ZeroShotConfig.parse(teacher)
    if isinstance(teacher, (str, Path)) and not Path(teacher).exists():
        name = str(teacher)
        if is_reference(name) or name in MODELS:
            recipe = dataclasses.replace(recipe, teacher=dataclasses.replace(
                recipe.teacher, model=canonical(name) if is_reference(name) else name))
            return recipe, None
        raise FileNotFoundError(f"--teacher {name}: no such checkpoint, registered model or PATH.py:FUNCTION")
    return recipe, teacher
