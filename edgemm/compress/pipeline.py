"""``edgemm compress``: teacher -> (scratch baseline) -> recipe stages -> report.

Every finished stage writes ``stages/NN_<name>.pt`` (a normal checkpoint, pruned shapes included)
with its report row, so ``--resume`` reloads finished stages instead of redoing them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from edgemm.compress.distill import fit
from edgemm.compress.prune import count_macs_params
from edgemm.compress.quantize import save_int8
from edgemm.compress.recipe import Recipe, StageType, load_recipe
from edgemm.compress.report import correct_string, vs_scratch, write_report
from edgemm.compress.stages import STAGE_HANDLERS, StageContext
from edgemm.data import open_dataset
from edgemm.models.pretrained import TORCHVISION_ARCH, available, image_start_kwargs
from edgemm.train.checkpoint import atomic_torch_save, load_checkpoint, load_model, make_checkpoint
from edgemm.train.evaluation import branch_warnings, metrics, predict_logits
from edgemm.train.precision import autocast_dtype


def float_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers (the frontend's fixed DFT and mel matrices included)."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def _row(name: str, model: nn.Module, splits, device, seconds: float, *, eval_model: nn.Module | None = None,
         **extra: Any) -> dict[str, Any]:
    """A report row: size figures of the float ``model``, accuracy of ``eval_model`` (default: the same)."""
    macs, params = count_macs_params(model)
    logits, y = predict_logits(eval_model or model, splits.test, device=device)
    result = metrics(logits, y, splits.labels)
    correct = correct_string(logits["fused"].argmax(1) == y)
    warnings = branch_warnings(result, "test")
    return {"name": name, "params": params, "macs": macs, "fp32_bytes": float_bytes(model),
            "accuracy": result.accuracy, "accuracy_image_only": result.accuracy_image_only,
            "accuracy_audio_only": result.accuracy_audio_only, "n": result.n, "seconds": seconds,
            "test_correct": correct, "warnings": warnings, **extra}


def _steps_per_epoch(splits, batch_size: int) -> int:
    """Optimiser steps in one pass over the training split (``fit`` drops a partial last batch)."""
    n = len(splits.train)
    return max(1, n // batch_size if n > batch_size else 1)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def teacher_cache_key(recipe: Recipe, data: str | Path, init: dict | None = None) -> str:
    """Names a cached teacher by what it was trained on and how.

    The data's identity is the generator version and parameters for ``"default"``, the resolved
    path plus the file's content hash for a manifest, and the resolved path for a video folder. So
    a new generator version or an edited manifest trains a new teacher instead of reusing one
    trained on other data. The model's identity is its parameter names and shapes and its
    preprocessing, so a registered name whose architecture changed between edgemm versions does
    not reuse the old architecture's weights.
    """
    from edgemm.data.synthetic import SyntheticConfig

    if str(data) == "default":
        identity = SyntheticConfig().key()
    else:
        path = Path(data).resolve()
        identity = str(path)
        if path.is_file():
            identity += ":" + hashlib.sha1(path.read_bytes()).hexdigest()
    blob = json.dumps({"data": identity, "teacher": recipe.to_dict()["teacher"], "init": init or {},
                       "architecture": architecture_fingerprint(recipe.teacher.model)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


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


def _teacher(recipe: Recipe, teacher: str | Path | None, data: str | Path, device, log
             ) -> tuple[nn.Module, dict, Path, float]:
    """The teacher model, its checkpoint, its path, and the seconds spent training it now (0 if reused)."""
    if teacher is not None:
        model, ckpt = load_model(teacher, map_location=str(device))
        return model, ckpt, Path(teacher), 0.0
    from edgemm.data.synthetic import default_cache_dir
    from edgemm.train import TrainConfig, train

    init = teacher_init_kwargs(recipe.teacher.model, recipe.teacher.pretrained)
    run = default_cache_dir() / "teachers" / f"{recipe.teacher.model}-{teacher_cache_key(recipe, data, init)}"
    seconds = 0.0
    if not (run / "summary.json").is_file():
        start = f", image encoder from {recipe.teacher.pretrained}" if init else ""
        log(f"training teacher {recipe.teacher.model} ({recipe.teacher.epochs} epochs{start}) into {run}")
        t0 = time.perf_counter()
        train(recipe.teacher.model, data, out=run, resume=True, progress=False, model_kwargs=init,
              config=TrainConfig(epochs=recipe.teacher.epochs, min_steps=recipe.teacher.min_steps, lr=recipe.teacher.lr,
                                 device=str(device),
                                 precision=recipe.teacher.precision.value))
        seconds = time.perf_counter() - t0
    else:
        log(f"reusing cached teacher {run / 'best.pt'}")
    model, ckpt = load_model(run / "best.pt", map_location=str(device))
    return model, ckpt, run / "best.pt", seconds


def compress(
    *,
    out: str | Path,
    data: str | Path = "default",
    teacher: str | Path | None = None,
    recipe: Recipe | str | Path | None = None,
    resume: bool = False,
    baseline: bool = True,
    device: str = "auto",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compresses a student under a teacher according to a recipe and writes the report.

    Args:
        out: Output directory: ``model.pt``, ``model_int8.pt2`` (after qat/ptq), ``report.json``,
            ``report.md``, ``recipe.yaml``, ``stages/``.
        data: ``"default"``, a manifest CSV or a video folder.
        teacher: A teacher checkpoint; None trains the recipe's teacher (cached per data set).
        recipe: A ``Recipe``, a YAML path, or None for the shipped default.
        resume: Reuse finished stages in ``out``.
        baseline: Also train the student from scratch with the distill stage's budget.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (quantization stages run on CPU).
        seed: Seed of every stage.
        log: Progress messages (default: stderr).

    Returns:
        The report: ``{"teacher": row, "stages": [rows...], ...}``.

    Raises:
        FileExistsError: If ``out`` holds stage results and ``resume`` is not set.
        ValueError: If teacher and student preprocess inputs differently.
    """
    import yaml

    log = log or (lambda s: print(s, file=sys.stderr))
    out = Path(out)
    stage_dir = out / "stages"
    if stage_dir.is_dir() and any(stage_dir.iterdir()) and not resume:
        raise FileExistsError(f"{out} already holds compression stages; pass --resume to continue or choose another --out")
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    dev = _resolve_device(device)
    torch.manual_seed(seed)
    t_start = time.perf_counter()
    teacher_model, teacher_ckpt, teacher_path, teacher_seconds = _teacher(recipe, teacher, data, dev, log)
    labels = teacher_ckpt["labels"]

    from edgemm.models import create_model

    # Seed right before each model is built, so results do not depend on whether the teacher was
    # trained in this process (which consumes random numbers) or loaded.
    torch.manual_seed(seed)
    student = create_model(recipe.student, num_classes=len(labels)).to(dev)
    if student.preprocess != teacher_model.preprocess:
        raise ValueError(f"student {recipe.student!r} and the teacher preprocess inputs differently; "
                         f"distillation feeds both the same batch (student {student.preprocess}, teacher {teacher_model.preprocess})")
    splits = open_dataset(data, student.preprocess, labels=labels)
    stage_dir.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    teacher_amp = autocast_dtype(recipe.teacher.precision, dev)
    log(f"teacher forward passes in {'float32' if teacher_amp is None else 'bfloat16 autocast'} "
        f"(teacher.precision: {recipe.teacher.precision.value}); the student trains in float32")
    ctx = StageContext(teacher=teacher_model, splits=splits, device=dev, seed=seed, log=log, teacher_amp=teacher_amp)
    common = {"data": splits.source, "recipe": recipe.to_dict()}

    teacher_row = _row("teacher", teacher_model, splits, dev, teacher_seconds, path=str(teacher_path),
                       trained_now=teacher_seconds > 0)
    plan: list[tuple[str, StageType | None, Any]] = []
    distill_cfg = next((s.config for s in recipe.stages if s.type is StageType.DISTILL), None)
    if baseline and distill_cfg is not None:
        plan.append(("scratch", None, distill_cfg))
    plan += [(s.type.value, s.type, s.config) for s in recipe.stages]

    rows, int8 = [], None
    reusable = resume  # a stage is reused only if it and every stage before it ran as planned now
    for i, (name, kind, cfg) in enumerate(plan):
        path = stage_dir / f"{i:02d}_{name}.pt"
        planned = json.loads(json.dumps({"stage": name, "config": dataclasses.asdict(cfg), "teacher": str(teacher_path),
                                         "teacher_amp": str(teacher_amp), "student": recipe.student, "seed": seed},
                                        default=str))
        if reusable and path.is_file():
            ckpt = load_checkpoint(path)
            if ckpt.get("planned") == planned:
                model_i, _ = load_model(path, map_location=str(dev))
                rows.append(ckpt["row"])
                if kind is not None:
                    student = model_i
                log(f"[{name}] reused {path}")
                continue
            log(f"[{name}] recipe, teacher or seed changed since {path} was written: running it and every later stage again")
        reusable = False
        log(f"[{name}] starting")
        t0 = time.perf_counter()
        if kind is None:  # the honest baseline: same student, same budget, labels only
            torch.manual_seed(seed)
            scratch = create_model(recipe.student, num_classes=len(labels)).to(dev)
            fit(scratch, None, splits, epochs=cfg.epochs, min_steps=cfg.min_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                modality_dropout=cfg.modality_dropout, mixup=cfg.mixup, seed=seed, device=dev, log=log)
            model_i, extra, eval_model = scratch, {}, scratch
        else:
            result = STAGE_HANDLERS[kind](student, ctx, cfg)
            student, extra = result.model.to(dev), result.extra
            eval_model = result.int8 if result.int8 is not None else student
            if result.int8 is not None:
                int8 = result.int8
                save_int8(int8, out / "model_int8.pt2")
            model_i = student
        row = _row(name, model_i, splits, dev if eval_model is model_i else torch.device("cpu"),
                   time.perf_counter() - t0, eval_model=eval_model,
                   epochs=cfg.training_epochs(_steps_per_epoch(splits, getattr(cfg, "batch_size", 64))),
                   **{k: v for k, v in extra.items() if k != "history"})
        rows.append(row)
        atomic_torch_save(make_checkpoint(model_i, labels=labels, row=json.loads(json.dumps(row)), planned=planned,
                                          **common), path)
        log(f"[{name}] accuracy {row['accuracy']:.3f} (image-only {row['accuracy_image_only']:.3f}, "
            f"audio-only {row['accuracy_audio_only']:.3f}), {row['params'] / 1e6:.3f} M params, "
            f"{row['macs'] / 1e6:.1f} M MACs, {row['seconds']:.0f} s")
        for w in row["warnings"]:
            log(f"[{name}] warning: {w}")

    final = student.cpu()
    quant = rows[-1]["name"] in ("qat", "ptq")
    atomic_torch_save(make_checkpoint(final, labels=labels, **common,
                                      quantization={"scheme": "pt2e-x86-int8", "file": "model_int8.pt2",
                                                    "stage": rows[-1]["name"]} if quant else None), out / "model.pt")
    report = {"teacher": teacher_row, "stages": rows, "vs_scratch": vs_scratch(rows),
              "recipe": recipe.to_dict(), "data": splits.source,
              "labels": labels, "device": str(dev), "total_seconds": time.perf_counter() - t_start,
              "final_model": str(out / "model.pt"), "int8_model": str(out / "model_int8.pt2") if quant else None}
    write_report(report, out)
    return report
