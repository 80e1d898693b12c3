"""``edgemm compress``: teacher -> (scratch baseline) -> recipe stages -> report.

Every finished stage writes ``stages/NN_<name>.pt`` (a normal checkpoint, pruned shapes included)
with its report row, so ``--resume`` reloads finished stages instead of redoing them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from edgemm.atomic import atomic_write_text, locks_output
from edgemm.compress.distill import fit
from edgemm.compress.prune import Probe, count_macs_params, frontend_macs
from edgemm.compress.recipe import Recipe, Stage, StageType, TeacherOutputMode, load_recipe
from edgemm.compress.report import BASELINE, correct_string, vs_scratch, write_report
from edgemm.compress.stages import StageContext
from edgemm.compress.teacher_outputs import TeacherOutputs
from edgemm.compress.teachers import data_identity, load_teacher, with_models
from edgemm.data import open_dataset
from edgemm.data.labels import count_labelled, labelled_only, with_label_fraction
from edgemm.metrics import branch_warnings, metrics
from edgemm.models.int8 import save_int8
from edgemm.models.temporal import NewestFrame
from edgemm.train import distributed
from edgemm.train.checkpoint import atomic_torch_save, load_checkpoint, load_model, make_checkpoint
from edgemm.train.config import schedule_steps
from edgemm.train.evaluation import predict_logits
from edgemm.train.loop import with_stream_rate
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
    return {"name": name, "params": params, "macs": macs, "frontend_macs": frontend_macs(model),
            "fp32_bytes": float_bytes(model),
            "accuracy": result.accuracy, "accuracy_image_only": result.accuracy_image_only,
            "accuracy_audio_only": result.accuracy_audio_only, "n": result.n, "seconds": seconds,
            "test_correct": correct, "warnings": warnings, **extra}


def _steps_per_epoch(splits, batch_size: int) -> int:
    """Optimiser steps in one pass over the training split (``fit`` drops a partial last batch)."""
    n = len(splits.train)
    return max(1, n // batch_size if n > batch_size else 1)


@dataclass(frozen=True)
class _Step:
    """One step of a run: a recipe stage, or the from-scratch baseline (``stage`` None)."""

    name: str
    stage: Stage | None
    config: Any

    @property
    def baseline(self) -> bool:
        return self.stage is None

    def record(self, teacher_path: Path, teacher_amp, student: str, seed: int, labels_fraction: float = 1.0,
               cached_outputs: bool = False, latency: Probe | None = None) -> dict[str, Any]:
        """What this step depends on, as stored in its checkpoint: a change means it must run again."""
        planned = {"stage": self.name, "config": dataclasses.asdict(self.config), "teacher": str(teacher_path),
                   "teacher_amp": str(teacher_amp), "student": student, "seed": seed}
        if labels_fraction != 1.0:
            planned["labels_fraction"] = labels_fraction
        if cached_outputs and not self.baseline:
            planned["teacher_outputs"] = TeacherOutputMode.CACHED.value
        if latency is not None and self.name == StageType.PRUNE:
            planned["latency_budget"] = {**latency.budget.to_dict(), "measured_on": latency.where}
        return json.loads(json.dumps(planned, default=str))


def _plan(recipe: Recipe, baseline: bool, warm: bool) -> list[_Step]:
    """The recipe's stages, preceded by the scratch baseline (a cold distill stage's budget, labels only).

    ``warm``: the student starts from the teacher's weights (``DistillConfig.starting``).
    """
    distill = next((s.config for s in recipe.stages if s.type == StageType.DISTILL), None)
    scratch = [_Step(BASELINE, None, distill.starting(False))] if baseline and distill is not None else []
    return scratch + [_Step(s.type, s, s.config.starting(warm) if s.type == StageType.DISTILL else s.config)
                      for s in recipe.stages]


def _reuse(path: Path, planned: dict[str, Any], device, log) -> tuple[nn.Module, dict] | None:
    """The model and report row of a finished step whose checkpoint matches ``planned``, else None."""
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    name = planned["stage"]
    if ckpt.get("planned") != planned:
        log(f"[{name}] recipe, teacher or seed changed since {path} was written: running it and every later stage again")
        return None
    model, _ = load_model(path, map_location=str(device))
    log(f"[{name}] reused {path}")
    return model, ckpt["row"]


@dataclass(frozen=True)
class _Student:
    """The student to compress: built from the recipe's name, or given as a module (Python API)."""

    model: nn.Module
    start: Callable[[], nn.Module]  # the same student as it starts, for the scratch baseline
    identity: str  # what a stage checkpoint records as its student

    @classmethod
    def build(cls, recipe: Recipe, given: nn.Module | None, num_classes: int, seed: int,
              kwargs: dict[str, Any] | None = None) -> "_Student":
        from edgemm.compress.teacher_outputs import weights_digest
        from edgemm.models import create_model
        from edgemm.models.contract import model_output

        if given is None:
            def start() -> nn.Module:
                # Seeded right before it is built, so results do not depend on whether the teacher
                # was trained in this process (which consumes random numbers) or loaded.
                torch.manual_seed(seed)
                return create_model(recipe.student, num_classes=num_classes, **(kwargs or {}))

            return cls(start(), start, recipe.student)
        if getattr(given, "edgemm_spec", None) is None:
            raise ValueError("student: a module must come from edgemm.models.create_model (a registered name or "
                             "PATH.py:FUNCTION), so its checkpoints can rebuild it")
        outputs = model_output(given).shape[-1]
        if outputs != num_classes:
            raise ValueError(f"student: the module returns {outputs} logits, the data has {num_classes} classes")
        initial = copy.deepcopy(given).cpu()
        return cls(given, lambda: copy.deepcopy(initial),
                   f"{given.edgemm_spec['name']}@{weights_digest(given)[:12]}")


def _scratch(student: _Student, splits, config, device, seed: int, log) -> nn.Module:
    """The honest baseline: the same student from the same start, the same budget, the labels alone."""
    model = student.start().to(device)
    fit(model, None, dataclasses.replace(splits, train=labelled_only(splits.train)), config, seed=seed, device=device,
        log=log)
    return model


def warm_start(student: nn.Module, teacher: nn.Module) -> bool:
    """Starts ``student`` from ``teacher``'s weights when both are the same network (born-again).

    Returns:
        Whether the weights were copied: same registered model and the same parameter and buffer
        names and shapes.
    """
    s_spec, t_spec = getattr(student, "edgemm_spec", None), getattr(teacher, "edgemm_spec", None)
    if s_spec is None or t_spec is None or s_spec.get("name") != t_spec.get("name"):
        return False
    own, theirs = student.state_dict(), teacher.state_dict()
    if own.keys() != theirs.keys() or any(own[k].shape != theirs[k].shape for k in own):
        return False
    student.load_state_dict({k: v.detach().clone() for k, v in theirs.items()})
    return True


def _teacher_as_scratch(teacher_row: dict[str, Any], recipe: Recipe, splits) -> dict[str, Any]:
    """The scratch baseline when the teacher is the student itself trained here by ``edgemm train``:
    the same row, at ``edgemm train``'s budget (no second training run)."""
    config = recipe.teacher.train_config()
    epochs = schedule_steps(config.epochs, _steps_per_epoch(splits, config.batch_size), config.min_steps)[1]
    return {**teacher_row, "name": BASELINE, "seconds": 0.0, "same_as": "teacher", "epochs": epochs}


def _log_row(row: dict[str, Any], log) -> None:
    name = row["name"]
    log(f"[{name}] accuracy {row['accuracy']:.3f} (image-only {row['accuracy_image_only']:.3f}, "
        f"audio-only {row['accuracy_audio_only']:.3f}), {row['params'] / 1e6:.3f} M params, "
        f"{row['macs'] / 1e6:.1f} M MACs, {row['seconds']:.0f} s")
    for w in row["warnings"]:
        log(f"[{name}] warning: {w}")


def _teacher_outputs(mode: TeacherOutputMode, teacher: nn.Module, splits, data, preprocess, device, amp, log
                     ) -> tuple[TeacherOutputs | None, dict[str, Any]]:
    """The cached teacher outputs when ``mode`` asks for them, and the report's note of it."""
    if mode is not TeacherOutputMode.CACHED:
        return None, {"mode": mode.value}
    from edgemm.compress import teacher_outputs
    from edgemm.data.synthetic import default_cache_dir

    t0 = time.perf_counter()
    key = teacher_outputs.cache_key(teacher, data_identity(data), len(splits.train), preprocess.to_dict(), amp)
    outputs = teacher_outputs.cached(teacher, splits.train, key=key, cache_dir=default_cache_dir() / "teacher_outputs",
                                     device=device, amp=amp, log=log)
    return outputs, {"mode": mode.value, "key": key, "samples": len(outputs), "seconds": time.perf_counter() - t0}


def _check_names(recipe: Recipe, given: nn.Module | None, teacher) -> None:
    """Every model the run will build resolves, before the teacher trains for minutes; model code a
    recipe file names runs only if the caller named it too or opted in (``edgemm.trust``)."""
    from edgemm.models.registry import check_model_name
    from edgemm.trust import check_stored_reference

    if given is None:
        check_stored_reference(recipe.student, "recipe student")
        check_model_name(recipe.student, "recipe student")
    if teacher is None and recipe.teacher.zero_shot() is None:
        check_stored_reference(recipe.teacher.model, "recipe teacher.model")
        check_model_name(recipe.teacher.model, "recipe teacher.model")


def _trust_named(student, teacher) -> None:
    """The caller named these model references (``--student`` / ``--teacher``): their code may run."""
    from edgemm.trust import is_reference, trust_reference

    for name in (student, teacher):
        if isinstance(name, str) and is_reference(name) and not Path(name).exists():
            trust_reference(name)


def _quantization(recipe: Recipe, stage: str) -> dict[str, Any]:
    """What the final checkpoint says about its int8 program: the file, the stage, the quantizer."""
    scheme = recipe.stages[-1].config.quantizer
    return {"scheme": f"pt2e-{scheme.value}-int8", "quantizer": scheme.value, "file": "model_int8.pt2",
            "stage": stage}


def _final_latency(probe: Probe, rows: list[dict[str, Any]], final: Path, log) -> dict[str, Any]:
    """The prune stage's budget summary, with the final model (after any later stage) measured too."""
    pruned = next(r for r in rows if r["name"] == StageType.PRUNE)
    result = dict(pruned["latency_budget"])
    result["final"] = probe.measure_checkpoint(final)
    result["final"]["met"] = probe.met(result["final"])
    result["met"] = result["final"]["met"]
    log(f"[latency] final model: {result['final']['latency_ms']:.3f} ms p90 {probe.budget.stage.value} "
        f"({result['final']['precision']}) on {probe.where}: {'within' if result['met'] else 'OVER'} the "
        f"{probe.budget.ms:g} ms budget")
    return result


def _resolve_recipe(recipe: Recipe | str | Path | None, teacher_outputs, student, teacher, latency
                    ) -> tuple[Recipe, nn.Module | None, Any]:
    """The recipe with the caller's models and teacher-output mode in it, every model name checked
    (and trusted where the caller named it); the student module given (Python API) or None; the
    teacher reference left to load."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if teacher_outputs is not None:
        recipe = dataclasses.replace(recipe, teacher=dataclasses.replace(recipe.teacher, outputs=teacher_outputs))
    given = student if isinstance(student, nn.Module) else None
    _trust_named(student, teacher)
    recipe, teacher = with_models(recipe, None if given is not None else student, teacher)
    if getattr(given, "edgemm_spec", None) is not None:
        recipe = dataclasses.replace(recipe, student=given.edgemm_spec["name"])
    _check_names(recipe, given, teacher)
    if latency is not None and not any(s.type == StageType.PRUNE for s in recipe.stages):
        raise ValueError("--latency-budget: the recipe has no prune stage, so nothing can bring the latency down; "
                         "add one (edgemm compress --print-recipe shows the default)")
    return recipe, given, teacher


def _starts_warm(recipe: Recipe, given: nn.Module | None, student: nn.Module, teacher: nn.Module, teacher_ckpt: dict,
                 log) -> bool:
    """Whether the student starts from the teacher's weights (``warm_start``: born-again), said in
    the log with the distill budget that follows from it."""
    if not student.preprocess.same_inputs(teacher.preprocess):
        raise ValueError(f"student {recipe.student!r} and the teacher preprocess inputs differently; "
                         f"distillation feeds both the same batch (student {student.preprocess}, teacher {teacher.preprocess})")
    warm = given is None and teacher_ckpt.get("zero_shot") is None and warm_start(student, teacher)
    distill = next((s.config for s in recipe.stages if s.type == StageType.DISTILL), None)
    if warm:
        log(f"student {recipe.student} has the teacher's architecture: it starts from the teacher's weights "
            "(born-again distillation)" + ("" if distill is None else
                                           f"; [distill] peak lr {distill.warm_lr:g} (distill.warm_lr) "
                                           f"instead of {distill.lr:g}"))
    elif distill is not None and distill.cold_min_steps > distill.min_steps:
        log(f"student {recipe.student} starts from nothing: [distill] runs at least {distill.cold_min_steps} steps "
            f"(distill.cold_min_steps) instead of {distill.min_steps}")
    return warm


def _transfer_splits(data, preprocess, labels: list[str], labels_fraction: float, seed: int, log
                     ) -> tuple[Any, dict[str, Any]]:
    """The data splits with all but ``labels_fraction`` of the training labels hidden, and the
    report's account of it."""
    splits = open_dataset(data, preprocess, labels=labels)
    splits.train = with_label_fraction(splits.train, labels_fraction, seed)
    labelled = count_labelled(splits.train)
    transfer = {"labels_fraction": labels_fraction, "train_labelled": labelled,
                "train_unlabelled": len(splits.train) - labelled}
    if transfer["train_unlabelled"]:
        log(f"transfer set: {labelled} labelled and {transfer['train_unlabelled']} unlabelled "
            "training samples (distillation learns from the teacher on all of them)")
    return splits, transfer


def _run_step(step: _Step, student: nn.Module, built: _Student, ctx: StageContext, out: Path | None
              ) -> tuple[nn.Module, dict[str, Any]]:
    """Runs one planned step: the scratch baseline (a fresh student) or a recipe stage (on
    ``student``). Returns the step's float model and its report row; a quantizing stage's int8
    program is saved to ``out`` (None: not this rank's to write)."""
    t0 = time.perf_counter()
    splits, dev = ctx.splits, ctx.device
    if step.baseline:
        model_i = eval_model = _scratch(built, splits, step.config, dev, ctx.seed, ctx.log)
        extra: dict[str, Any] = {}
    else:
        result = step.stage.spec.runner()(student, ctx, step.config)
        model_i, extra = result.model.to(dev), result.extra
        eval_model = result.int8 if result.int8 is not None else model_i
        if result.int8 is not None and out is not None:
            save_int8(result.int8, out / "model_int8.pt2")
    row = _row(step.name, model_i, splits, dev if eval_model is model_i else torch.device("cpu"),
               time.perf_counter() - t0, eval_model=eval_model,
               epochs=step.config.training_epochs(_steps_per_epoch(splits, getattr(step.config, "batch_size", 64))),
               **{k: v for k, v in extra.items() if k != "history"})
    return model_i, row


@locks_output("compress")
def compress(
    *,
    out: str | Path,
    data: str | Path = "default",
    teacher: str | Path | nn.Module | None = None,
    student: str | nn.Module | None = None,
    labels_fraction: float = 1.0,
    recipe: Recipe | str | Path | None = None,
    teacher_outputs: TeacherOutputMode | str | None = None,
    resume: bool = False,
    baseline: bool = True,
    latency: Probe | None = None,
    device: str = "auto",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compresses a student under a teacher according to a recipe and writes the report.

    Under ``torchrun --nproc-per-node N`` every training stage runs as DistributedDataParallel
    (``edgemm.compress.distill.fit``), cached teacher outputs are computed in shards across the
    ranks, and only rank 0 writes files; every rank returns the same report.

    Args:
        out: Output directory: ``model.pt``, ``model_int8.pt2`` (after qat/ptq), ``report.json``,
            ``report.md``, ``recipe.yaml``, ``stages/``.
        data: ``"default"``, a manifest CSV or a video folder.
        teacher: A teacher checkpoint; a model to train as the teacher (a registered name or
            ``PATH.py:FUNCTION``, replacing the recipe's ``teacher.model``; cached per data set);
            a model instance (Python only: used as it is); None trains the recipe's teacher.
        student: The student (a registered name or ``PATH.py:FUNCTION``), replacing the recipe's;
            or (Python only) a module built by ``edgemm.models.create_model``, starting from its
            current weights (the scratch baseline starts from them too).
        labels_fraction: Keep this fraction of the training labels (per class, whole clips) and
            use the rest of the training split as unlabelled transfer data: the teacher trained here
            and the scratch baseline see only the kept labels, distillation sees every sample.
        recipe: A ``Recipe``, a YAML path, or None for the shipped default.
        teacher_outputs: ``online``, ``cached`` or ``auto``, replacing the recipe's ``teacher.outputs``.
        resume: Reuse finished stages in ``out``.
        baseline: Also train the student from scratch with the distill stage's budget.
        latency: Prune to its budget, as it measures it (``edgemm.deploy.probe.LatencyProbe``:
            the device profile's target and backend, here or over SSH; ``edgemm.compress.budget``);
            the final model is measured too.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (quantization stages run on CPU).
        seed: Seed of every stage, and of a teacher trained here (cached per seed; 0 is `edgemm train`'s).
        log: Progress messages (default: stderr; under torchrun, rank 0's only).

    Returns:
        The report: ``{"teacher": row, "stages": [rows...], ...}``.

    Raises:
        FileExistsError: If ``out`` holds stage results and ``resume`` is not set.
        ValueError: If teacher and student preprocess inputs differently.
    """
    import yaml

    ranks = distributed.setup(device)
    log = log or ((lambda s: print(s, file=sys.stderr)) if ranks.main else (lambda s: None))
    out = Path(out)
    stage_dir = out / "stages"
    if stage_dir.is_dir() and any(stage_dir.iterdir()) and not resume:
        raise FileExistsError(f"{out} already holds compression stages; pass --resume to continue or choose another --out")
    recipe, given, teacher = _resolve_recipe(recipe, teacher_outputs, student, teacher, latency)
    dev = ranks.device
    torch.manual_seed(seed)
    t_start = time.perf_counter()
    teacher_model, teacher_ckpt, teacher_path, teacher_seconds = load_teacher(recipe, teacher, data, dev, log,
                                                                          labels_fraction, seed)
    labels = teacher_ckpt["labels"]

    stream = None if given is not None else with_stream_rate(recipe.student, {}, data, None)  # a temporal student's rate
    built = _Student.build(recipe, given, len(labels), seed, stream)
    student = built.model.to(dev)
    frames = student.preprocess.frames
    if frames > 1 and teacher_model.preprocess.frames == 1:
        teacher_model = NewestFrame(teacher_model, student.preprocess)
        log(f"the teacher is a frame model: it answers for the newest frame of each {frames}-frame window the "
            "student sees")
    warm = _starts_warm(recipe, given, student, teacher_model, teacher_ckpt, log)
    splits, transfer = _transfer_splits(data, student.preprocess, labels, labels_fraction, seed, log)
    if ranks.main:
        stage_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    teacher_amp = autocast_dtype(recipe.teacher.training_precision, dev)
    log(f"teacher forward passes in {'float32' if teacher_amp is None else 'bfloat16 autocast'} "
        f"(teacher.precision: {recipe.teacher.training_precision.value}); the student trains in float32")
    zero_shot = teacher_ckpt.get("zero_shot")
    mode = recipe.teacher.outputs.resolve(zero_shot is not None)
    cached, outputs_note = _teacher_outputs(mode, teacher_model, splits, data, student.preprocess, dev, teacher_amp, log)
    if latency is not None:
        latency.bind(labels=labels, data=str(data))
    ctx = StageContext(teacher=teacher_model, splits=splits, device=dev, seed=seed, log=log, teacher_amp=teacher_amp,
                       teacher_outputs=cached, latency=latency)
    common = {"data": splits.source, "recipe": recipe.to_dict()}

    teacher_row = _row("teacher", teacher_model, splits, dev, teacher_seconds, path=str(teacher_path),
                       trained_now=teacher_seconds > 0 and zero_shot is None,
                       **({"zero_shot": zero_shot} if zero_shot else {}))
    rows, reusable = [], resume  # a stage is reused only if it and every stage before it ran as planned now
    teacher_is_scratch = warm and teacher is None  # the student itself, trained here as edgemm train does
    if baseline and teacher_is_scratch:
        rows.append(_teacher_as_scratch(teacher_row, recipe, splits))
        log(f"[{BASELINE}] the teacher is the student trained alone by edgemm train's recipe: it is the baseline")
    for i, step in enumerate(_plan(recipe, baseline and not teacher_is_scratch, warm)):
        path = stage_dir / f"{i:02d}_{step.name}.pt"
        planned = step.record(teacher_path, teacher_amp, built.identity, seed, labels_fraction, cached is not None,
                              latency)
        reused = _reuse(path, planned, dev, log) if reusable else None
        if reused is not None:
            model_i, row = reused
            rows.append(row)
            if not step.baseline:
                student = model_i
            continue
        reusable = False
        log(f"[{step.name}] starting")
        model_i, row = _run_step(step, student, built, ctx, out if ranks.main else None)
        if not step.baseline:
            student = model_i
        if ranks.distributed:
            row["replica_max_abs_diff"] = distributed.replica_spread(model_i)
        rows.append(row)
        if ranks.main:
            atomic_torch_save(make_checkpoint(model_i, labels=labels, row=json.loads(json.dumps(row)), planned=planned,
                                              **common), path)
        _log_row(row, log)

    final = student.cpu()
    quant = recipe.quantized
    report = {"teacher": teacher_row, "stages": rows, "vs_scratch": vs_scratch(rows), "transfer": transfer,
              "teacher_outputs": outputs_note, "world_size": ranks.world, "seed": seed,
              "recipe": recipe.to_dict(), "data": splits.source,
              "labels": labels, "device": str(dev), "total_seconds": time.perf_counter() - t_start,
              "final_model": str(out / "model.pt"), "int8_model": str(out / "model_int8.pt2") if quant else None}
    if ranks.main:
        atomic_torch_save(make_checkpoint(final, labels=labels, **common,
                                          quantization=_quantization(recipe, rows[-1]["name"]) if quant else None),
                         out / "model.pt")
        if latency is not None:
            report["latency_budget"] = _final_latency(latency, rows, out / "model.pt", log)
        write_report(report, out)
    distributed.teardown(ranks)
    return report
