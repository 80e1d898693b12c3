"""Latency-aware pruning: what each channel group's width costs on the device, measured once.

A MACs count says a channel of a 7×7 early convolution and a channel of the last 1×1 are worth
their multiply-adds; on a real backend one may cost nothing (the kernel runs at the same speed on
24 as on 32 channels) and the other most of the time. The table prunes each channel group of the
student alone, by a few widths, exports and times the result with the budget's probe, and fits the
milliseconds saved per channel removed. Global pruning then ranks channels by importance divided
by that saving (relative to the mean), so the channels that buy the most time per unit of
importance go first (the idea of HALP, Shen et al. 2022, with a measured table instead of a model).

The table depends only on the student's layer shapes and on where and how it is measured, so it
is cached under the user cache, one file per (architecture, device profile, machine or SSH host).
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from edgemm.atomic import atomic_write_text
from edgemm.compress.recipe import Importance

RATIOS = (0.25, 0.5)  # the widths measured per group: this fraction of its channels removed
SPREAD = 4.0  # weights stay within [1/4, 4]: time moves the ranking, importance still counts


@dataclass
class LatencyTable:
    """Milliseconds saved per channel group, and how they were measured.

    Attributes:
        base_ms: The unpruned student's p50 of the budget's stage.
        groups: Per group (named by its root layer): ``channels``, the measured ``points``
            (``removed`` channels, ``latency_ms``, the paired ``base_ms``) and the fitted
            ``ms_per_channel`` saved (None: below the noise).
        measured: Device profile, precision, stage, where.
    """

    base_ms: float
    groups: dict[str, dict[str, Any]]
    measured: dict[str, Any]

    def weights(self) -> dict[str, float]:
        """Each group's milliseconds saved per channel relative to the mean of the measured groups,
        clamped to ``[1 / SPREAD, SPREAD]``; 1 for a group whose saving was below the noise."""
        slopes = {k: g["ms_per_channel"] for k, g in self.groups.items()}
        known = [max(v, 0.0) for v in slopes.values() if v is not None]
        mean = sum(known) / len(known) if known else 0.0
        if mean <= 0:
            return {k: 1.0 for k in slopes}
        return {k: 1.0 if v is None else min(max(max(v, 0.0) / mean, 1 / SPREAD), SPREAD) for k, v in slopes.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LatencyWeighted:
    """A torch-pruning importance: the base importance of a group's channels divided by the group's
    relative latency saving (``LatencyTable.weights``), so cheap-to-keep channels rank higher."""

    def __init__(self, base: Callable, weights: dict[nn.Module, float]) -> None:
        self.base, self.weights = base, weights

    def __call__(self, group) -> torch.Tensor:
        imp = self.base(group)
        return imp / self.weights.get(group[0].dep.target.module, 1.0)


def _groups(pruner) -> list:
    return list(pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types))


def _name(pruner, group) -> str:
    return pruner.DG._module2name[group[0].dep.target.module]


def _prune_one(model: nn.Module, cfg, name: str, ratio: float) -> int:
    """Removes ``ratio`` of group ``name``'s least important channels (kept count rounded down to
    ``cfg.round_to``) from ``model``; returns how many were removed."""
    from edgemm.compress.prune import build_pruner, importance_of

    pruner = build_pruner(model, cfg)
    group = next(g for g in _groups(pruner) if _name(pruner, g) == name)
    channels = len(group[0].idxs)
    keep = max(cfg.round_to, int(channels * (1 - ratio)) // cfg.round_to * cfg.round_to)
    removed = channels - keep
    if removed <= 0:
        return 0
    order = torch.argsort(importance_of(Importance.MAGNITUDE)(group))  # latency does not depend on which
    dep = group[0].dep
    pruner.DG.get_pruning_group(dep.target.module, dep.handler, order[:removed].tolist()).prune()
    return removed


def build_table(model: nn.Module, cfg, probe, log: Callable[[str], None]) -> LatencyTable:
    """Measures every channel group of ``model`` pruned alone by each of ``RATIOS``.

    Each group's trials are paired with a measurement of the unpruned student taken just before
    them, so drift of the machine between groups cancels; the spread of those unpruned
    measurements is the noise. A group whose largest trial saves less than twice the noise gets no
    slope (``ms_per_channel`` None, weight 1): on a shared machine a small student's per-channel
    savings can be below what one measurement resolves, and "not measurable" must not read as
    "costs nothing".

    Args:
        model: The student (not changed: each measurement prunes a copy).
        cfg: The prune config (importance, rounding) of the run.
        probe: ``edgemm.deploy.probe.LatencyProbe``.
        log: Progress messages.
    """
    from edgemm.compress.prune import build_pruner

    pruner = build_pruner(copy.deepcopy(model), cfg)
    names = [(_name(pruner, g), len(g[0].idxs)) for g in _groups(pruner)]
    groups: dict[str, dict[str, Any]] = {}
    bases = []
    for name, channels in names:
        base = probe.measure(copy.deepcopy(model))["p50_ms"]
        bases.append(base)
        points = []
        for ratio in RATIOS:
            trial = copy.deepcopy(model)
            removed = _prune_one(trial, cfg, name, ratio)
            if removed and all(p["removed"] != removed for p in points):
                points.append({"removed": removed, "latency_ms": probe.measure(trial)["p50_ms"], "base_ms": base})
        groups[name] = {"channels": channels, "points": points}
    noise = 1.4826 * statistics.median(abs(b - statistics.median(bases)) for b in bases) if len(bases) > 1 else 0.0
    for name, g in groups.items():
        saved = [(p["removed"], p["base_ms"] - p["latency_ms"]) for p in g["points"]]
        slope = sum(k * s for k, s in saved) / sum(k * k for k, _ in saved) if saved else 0.0
        resolved = bool(saved) and max(s for _, s in saved) > 2 * noise
        g["ms_per_channel"] = slope if resolved else None
        log(f"  latency table: {name} ({g['channels']} ch): " + (f"{1000 * slope:+.2f} µs saved per channel removed"
            if resolved else f"no saving above the noise ({1000 * noise:.1f} µs)"))
    b = probe.budget
    return LatencyTable(statistics.median(bases), groups, {
        "device_profile": b.device.name, "stage": b.stage.value, "where": probe.where, "statistic": "p50",
        "ratios": list(RATIOS), "noise_ms": noise})


def table_key(model: nn.Module, cfg, probe) -> str:
    """What the table depends on: layer shapes, rounding, the profile, the stage, where it runs."""
    from edgemm.train.checkpoint import layer_shapes

    b = probe.budget
    what = {"version": 2, "layers": layer_shapes(model), "round_to": cfg.round_to, "importance": cfg.importance.value,
            "device": b.to_dict()["device"], "stage": b.stage.value, "where": probe.where, "ratios": RATIOS}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_table(model: nn.Module, cfg, probe, cache_dir: Path, log: Callable[[str], None]) -> LatencyTable:
    """The table for this student and device from ``cache_dir``, built and cached when missing."""
    path = Path(cache_dir) / f"{probe.budget.device.name}-{table_key(model, cfg, probe)}.json"
    if path.is_file():
        try:
            table = LatencyTable(**json.loads(path.read_text()))
            log(f"  latency table: reused {path}")
            return table
        except (ValueError, TypeError) as e:  # an unreadable cache entry is rebuilt, never trusted
            log(f"  latency table: {path} unreadable ({e}); measuring again")
    log(f"  latency table: measuring each channel group of the student on {probe.where} (once per device)")
    table = build_table(model, cfg, probe, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(table.to_dict(), indent=1))
    return table


def latency_importance(model: nn.Module, cfg, table: LatencyTable) -> LatencyWeighted:
    """The importance that ``build_pruner`` uses for latency-aware pruning of ``model``."""
    from edgemm.compress.prune import importance_of

    modules = dict(model.named_modules())
    weights = {modules[name]: w for name, w in table.weights().items() if name in modules}
    return LatencyWeighted(importance_of(cfg.importance), weights)
