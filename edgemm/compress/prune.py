"""Structured channel pruning with torch-pruning's dependency graph (DepGraph, Fang et al. 2023).

DepGraph finds every layer coupled to a channel (through concat fusion, gating products,
residual streams and attention heads), so removing a channel removes it everywhere at once and
the model stays valid. What must stay whole (the classifier outputs, the audio branch's per-mel-band
input norm, whole attention heads) is declared by the models themselves
(``edgemm.models.pruning_hints``); the fixed-weight frontend has nothing to prune.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from edgemm.compress.recipe import Importance, PruneConfig
from edgemm.models.pruning_hints import PruningHints, gather

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
    """A torch-pruning ``MetaPruner`` that reaches ``cfg`` in ``cfg.steps`` steps.

    What must stay whole comes from the model: every module's ``pruning_hints()``
    (``edgemm.models.pruning_hints``). A model that declares none keeps every linear layer as wide as
    the class count (its classifier) and lets DepGraph find the rest. Per-branch ratios need an
    ``AVModel``'s branches. ``importance`` replaces ``cfg.importance`` (latency-aware pruning weights
    it by measured time). Global pruning never removes more than ``MAX_GROUP_RATIO`` of one group's
    channels.
    """
    import torch_pruning as tp

    hints = gather(model)
    if not hints:
        hints = PruningHints(keep=_classifiers(model))
    with warnings.catch_warnings():
        # Free parameters a model does not declare (learned gains, missing-modality embeddings) are
        # pruned along their last dimension, which is what torch-pruning does with them anyway.
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        return tp.pruner.MetaPruner(
            model,
            model.example_inputs(2),
            importance=importance or importance_of(cfg.importance),
            global_pruning=cfg.global_pruning,
            pruning_ratio=cfg.ratio,
            pruning_ratio_dict=_branch_ratios(model, cfg) or None,
            iterative_steps=cfg.steps,
            ignored_layers=hints.keep,
            round_to=cfg.round_to,
            max_pruning_ratio=MAX_GROUP_RATIO if cfg.global_pruning else 1.0,
            unwrapped_parameters=hints.unwrapped or None,
            num_heads=hints.num_heads,
        )


def _branch_ratios(model: nn.Module, cfg: PruneConfig) -> dict[nn.Module, float]:
    """``cfg``'s image / audio / fusion ratios keyed by the branch they prune.

    Raises:
        ValueError: If one is set and the model has no such branches.
    """
    from edgemm.models.av import AVModel

    wanted = (cfg.image_ratio, cfg.audio_ratio, cfg.fusion_ratio)
    if not isinstance(model, AVModel):
        if any(r is not None for r in wanted):
            raise ValueError("prune: image_ratio / audio_ratio / fusion_ratio need an AVModel's branches; "
                             f"{type(getattr(model, 'model', model)).__name__} gets the global ratio only")
        return {}
    branches = (model.image_encoder, model.audio_encoder, model.fusion)
    return {m: r for m, r in zip(branches, wanted) if r is not None}


def _classifiers(model: nn.Module) -> list[nn.Module]:
    """Every linear layer whose width is the model's class count."""
    was = model.training
    model.eval()
    with torch.no_grad():
        classes = model(*model.example_inputs(2)).shape[1]
    model.train(was)
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == classes]


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
