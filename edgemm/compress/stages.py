"""The built-in stage runners, one function per ``StageType`` (``edgemm.compress.recipe.STAGES``
names them by ``"module:function"``, so recipes parse without importing torch).

A handler takes the current student and a ``StageContext`` and returns a ``StageOutput``: the
new student (a float ``AVModel``, or for qat/ptq a converted int8 ``PT2EModel`` plus the float
model carrying the same learned weights) and any extra report fields.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from edgemm.compress.budget import prune_to_budget, summary
from edgemm.compress.distill import fit
from edgemm.compress.prune import Probe, prune
from edgemm.compress.quantize import (
    calibrate,
    convert,
    prepare_ptq,
    prepare_qat,
    quantized_layers,
    stored_bytes,
)
from edgemm.compress.recipe import DistillConfig, PruneConfig, PTQConfig, QATConfig
from edgemm.compress.teacher_outputs import TeacherOutputs
from edgemm.data.labels import labelled_only


@dataclass
class StageContext:
    """What every stage may use."""

    teacher: nn.Module
    splits: Any
    device: torch.device
    seed: int
    log: Callable[[str], None]
    teacher_amp: torch.dtype | None = None  # autocast dtype of the teacher's forward passes
    teacher_outputs: TeacherOutputs | None = None  # the teacher's outputs computed beforehand (teacher.outputs: cached)
    latency: Probe | None = None  # prune to the latency budget it measures (``--latency-budget``)


@dataclass
class StageOutput:
    model: nn.Module  # the float student after this stage
    int8: nn.Module | None = None  # the converted int8 model (qat / ptq)
    extra: dict[str, Any] = field(default_factory=dict)


def _fit(model: nn.Module, ctx: StageContext, config: DistillConfig, **kw: Any):
    """``fit`` with the context's teacher, data, teacher arithmetic, device and log (``kw`` may override)."""
    kw = {"device": ctx.device, "log": ctx.log, "seed": ctx.seed, **kw}
    return fit(model, ctx.teacher, ctx.splits, config, teacher_amp=ctx.teacher_amp, teacher_outputs=ctx.teacher_outputs,
               **kw)


def run_distill(student: nn.Module, ctx: StageContext, cfg: DistillConfig) -> StageOutput:
    """Distils ``cfg`` as the plan resolved it for the student's start (``DistillConfig.starting``)."""
    result = _fit(student, ctx, cfg)
    return StageOutput(student, extra={"best_epoch": result.best_epoch, "history": result.history})


def run_prune(student: nn.Module, ctx: StageContext, cfg: PruneConfig) -> StageOutput:
    def finetune(model: nn.Module, step: int) -> float | None:
        if not cfg.finetune_epochs:
            return None
        result = _fit(model, ctx, DistillConfig(epochs=cfg.finetune_epochs, min_steps=cfg.finetune_min_steps, lr=cfg.lr),
                      seed=ctx.seed + 1000 + step)
        return result.best_val if result.best_val >= 0 else None

    batches = DataLoader(labelled_only(ctx.splits.train), batch_size=32, shuffle=True,  # Taylor importance: labels
                         generator=torch.Generator().manual_seed(ctx.seed))
    kw = {"finetune": finetune, "gradient_batches": batches, "device": ctx.device, "log": ctx.log}
    if ctx.latency is None:
        return StageOutput(student.to(ctx.device), extra={"steps": prune(student, cfg, **kw)})
    trace, table = prune_to_budget(student, cfg, ctx.latency, **kw)
    extra = {"steps": trace, "latency_budget": summary(ctx.latency, trace, table)}
    return StageOutput(student.to(ctx.device), extra=extra)


def _float_with_weights_of(graph_model: nn.Module, float_model: nn.Module) -> nn.Module:
    """The float model carrying the weights a PT2E graph learned (names are preserved by export)."""
    out = copy.deepcopy(float_model).cpu()
    learned = graph_model.graph.state_dict()
    own = out.state_dict()
    out.load_state_dict({k: learned[k].detach().cpu() if k in learned and learned[k].shape == v.shape else v
                         for k, v in own.items()})
    return out


def _int8_extra(int8: nn.Module) -> dict[str, Any]:
    layers = quantized_layers(int8)
    return {"int8_bytes": stored_bytes(int8), "quantized_layers": sum(layers.values()),
            "float_layers": sorted(k for k, v in layers.items() if not v)}


def run_qat(student: nn.Module, ctx: StageContext, cfg: QATConfig) -> StageOutput:
    student = student.cpu().eval()
    prepared = prepare_qat(student, cfg.quantizer)
    # Logit distillation only: the exported graph returns logits, not the embeddings.
    _fit(prepared, ctx, DistillConfig(epochs=cfg.epochs, min_steps=cfg.min_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                                      feature_weight=0.0), seed=ctx.seed + 2000, device="cpu", keep_best=False)
    float_model = _float_with_weights_of(prepared, student)
    int8 = convert(prepared)
    return StageOutput(float_model, int8=int8, extra=_int8_extra(int8))


def run_ptq(student: nn.Module, ctx: StageContext, cfg: PTQConfig) -> StageOutput:
    student = student.cpu().eval()
    prepared = prepare_ptq(student, cfg.quantizer)
    loader = DataLoader(ctx.splits.train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(ctx.seed))
    n = calibrate(prepared, loader, cfg.calibration_samples)
    int8 = convert(prepared)
    return StageOutput(student, int8=int8, extra={"calibration_samples": n, **_int8_extra(int8)})
