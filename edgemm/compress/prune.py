"""Structured channel pruning with torch-pruning's dependency graph (DepGraph, Fang et al. 2023).

DepGraph finds every layer coupled to a channel (through concat fusion, gating products,
residual streams and attention heads), so removing a channel removes it everywhere at once and
the model stays valid. Kept out of pruning: the classifier outputs (the label count is fixed), the
audio branch's per-mel-band input norm (its width is the mel count), and the fixed-weight frontend.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from edgemm.compress.recipe import Importance, PruneConfig

MAX_GROUP_RATIO = 0.9  # global pruning keeps at least a tenth of every group's channels


def frontend_macs(model: nn.Module) -> int:
    """MACs of the in-graph log-mel frontend (functional ops the module counter does not see); 0 for
    a model that takes the waveform into its own layers."""
    from edgemm.models.frontend import LogMelFrontend

    frontend = getattr(model, "frontend", None)
    return frontend.macs() if isinstance(frontend, LogMelFrontend) else 0


def count_macs_params(model: nn.Module) -> tuple[int, int]:
    """(MACs for one sample, parameter count), the frontend included."""
    import torch_pruning as tp

    ex = model.example_inputs(1)
    was = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, ex)
    model.train(was)
    return int(macs) + frontend_macs(model), int(params)


def importance_of(kind: Importance):
    """torch-pruning's importance criterion for ``kind``."""
    import torch_pruning as tp

    return {
        Importance.MAGNITUDE: lambda: tp.importance.GroupMagnitudeImportance(p=2),
        Importance.TAYLOR: lambda: tp.importance.GroupTaylorImportance(),
        Importance.BN_SCALE: lambda: tp.importance.BNScaleImportance(),
    }[kind]()


def build_pruner(model: nn.Module, cfg: PruneConfig, importance: Callable | None = None):
    """A torch-pruning ``MetaPruner`` that reaches ``cfg`` in ``cfg.steps`` steps: for an ``AVModel``
    with its branches and fusion block known, for any other model from its graph alone.

    ``importance`` replaces ``cfg.importance`` (latency-aware pruning weights it by measured time).
    Global pruning never removes more than ``MAX_GROUP_RATIO`` of one group's channels.
    """
    from edgemm.models.av import AVModel

    if not isinstance(model, AVModel):
        return _generic_pruner(model, cfg, importance)
    import torch_pruning as tp

    fusion = model.fusion
    ignored: list[nn.Module] = [model.audio_encoder.bn0]
    ignored += [fusion.head_image, fusion.head_audio] if fusion.produces_logits else [model.head]
    unwrapped = [(model.missing_image, 0), (model.missing_audio, 0)]
    num_heads: dict[nn.Module, int] = {}
    if hasattr(fusion, "cls"):  # attention: the residual stream runs through these tokens
        unwrapped += [(fusion.cls, 2), (fusion.type_embed, 2)]
        for blk in fusion.blocks:
            num_heads.update({blk.q: blk.heads, blk.k: blk.heads, blk.v: blk.heads})
    ratios = {m: r for m, r in ((model.image_encoder, cfg.image_ratio), (model.audio_encoder, cfg.audio_ratio),
                                (model.fusion, cfg.fusion_ratio)) if r is not None}
    pruner = tp.pruner.MetaPruner(
        model,
        model.example_inputs(2),
        importance=importance or importance_of(cfg.importance),
        global_pruning=cfg.global_pruning,
        pruning_ratio=cfg.ratio,
        pruning_ratio_dict=ratios or None,
        iterative_steps=cfg.steps,
        ignored_layers=ignored,
        round_to=cfg.round_to,
        max_pruning_ratio=MAX_GROUP_RATIO if cfg.global_pruning else 1.0,
        unwrapped_parameters=unwrapped,
        num_heads=num_heads,
    )
    return pruner


def _generic_pruner(model: nn.Module, cfg: PruneConfig, importance: Callable | None = None):
    """A pruner for a model edgemm knows only by its contract: DepGraph finds the coupled channels;
    the classifier (every linear layer with the class count as its width) keeps its outputs, and
    per-branch ratios do not apply (there are no known branches)."""
    import torch_pruning as tp

    if any(r is not None for r in (cfg.image_ratio, cfg.audio_ratio, cfg.fusion_ratio)):
        raise ValueError("prune: image_ratio / audio_ratio / fusion_ratio need an AVModel's branches; "
                         f"{type(getattr(model, 'model', model)).__name__} gets the global ratio only")
    was = model.training
    model.eval()
    with torch.no_grad():
        classes = model(*model.example_inputs(2)).shape[1]
    model.train(was)
    ignored = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == classes]
    with warnings.catch_warnings():
        # Free parameters (learned gains, missing-modality embeddings) are pruned along their last
        # dimension, which is what torch-pruning does with them anyway; its warning says only that.
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        return tp.pruner.MetaPruner(model, model.example_inputs(2), importance=importance or importance_of(cfg.importance),
                                    global_pruning=cfg.global_pruning, pruning_ratio=cfg.ratio,
                                    max_pruning_ratio=MAX_GROUP_RATIO if cfg.global_pruning else 1.0,
                                    iterative_steps=cfg.steps, ignored_layers=ignored, round_to=cfg.round_to)


def taylor_gradients(model: nn.Module, batches, device: torch.device, n_batches: int = 4) -> None:
    """Accumulates loss gradients on a few batches, which Taylor importance reads."""
    model.zero_grad(set_to_none=True)
    model.eval()  # BN statistics stay untouched; gradients still flow
    for i, batch in enumerate(batches):
        if i >= n_batches:
            break
        logits = model(batch["image"].to(device), batch["audio"].to(device))
        F.cross_entropy(logits, batch["label"].to(device)).backward()


class Probe(Protocol):
    """Measures a model where it will run (``edgemm.deploy.probe.LatencyProbe``).

    Attributes:
        budget: The ``edgemm.compress.budget.LatencyBudget`` it measures against.
        where: Where it measures, for the report.
    """

    budget: Any
    where: str

    def bind(self, *, labels: list[str], data: str) -> None: ...

    def measure(self, model: nn.Module) -> dict[str, Any]: ...

    def measure_checkpoint(self, checkpoint: Path) -> dict[str, Any]: ...

    def compare(self, models: list[nn.Module], precision: Any = None, rounds: int = ...) -> dict[str, Any]: ...

    def met(self, measurement: dict[str, Any]) -> bool: ...


def prune(
    model: nn.Module,
    cfg: PruneConfig,
    *,
    finetune: Callable[[nn.Module, int], float | None],
    gradient_batches=None,
    device: torch.device | str = "cpu",
    probe: Probe | None = None,
    importance: Callable | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Prunes ``model`` in place over ``cfg.steps`` steps, fine-tuning after each.

    Args:
        model: An ``AVModel``, or any model under the contract.
        cfg: Ratios, importance, steps, rounding.
        finetune: ``finetune(model, step)`` trains the model after each pruning step and returns
            its validation accuracy (or None).
        gradient_batches: Batches for Taylor importance (required for ``importance: taylor``).
        device: Device of the model.
        probe: Measures each step's model before it is fine-tuned; pruning stops after the first
            step the probe says is enough (``probe.met``).
        importance: Replaces ``cfg.importance`` (``edgemm.compress.latency_table``).
        log: Progress messages.

    Returns:
        Per step: MACs, parameters, validation accuracy, and the probe's measurement.
    """
    if cfg.importance is Importance.TAYLOR and gradient_batches is None:
        raise ValueError("prune.importance 'taylor' needs gradient batches")
    device = torch.device(device)
    model.to("cpu")
    pruner = build_pruner(model, cfg, importance)
    trace = []
    for step in range(cfg.steps):
        if cfg.importance is Importance.TAYLOR:
            model.to(device)
            taylor_gradients(model, gradient_batches, device)
            model.to("cpu")
        pruner.step()
        model.zero_grad(set_to_none=True)
        macs, params = count_macs_params(model)
        row: dict[str, Any] = {"step": step + 1, "ratio": round(cfg.ratio * (step + 1) / cfg.steps, 4),
                               "macs": macs, "params": params}
        log(f"  prune step {step + 1}/{cfg.steps}: {params / 1e6:.3f} M params, {macs / 1e6:.1f} M MACs")
        if probe is not None:
            row.update(probe.measure(model))
            row["met"] = probe.met(row)
            log(f"  prune step {step + 1}: {row['latency_ms']:.3f} ms p90 ({row['precision']}, {row['backend']})")
        model.to(device)
        row["val_accuracy"] = finetune(model, step)
        model.to("cpu")
        trace.append(row)
        if row.get("met"):
            break
    return trace
