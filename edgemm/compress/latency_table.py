"""Latency-aware pruning: what each channel group's width costs on the device, measured once.

A MACs count says a channel of a 7×7 early convolution and a channel of the last 1×1 are worth
their multiply-adds; on a real backend one may cost nothing (the kernel runs at the same speed on
24 as on 32 channels) and the other most of the time. The table prunes each channel group of the
student alone, by a few widths, exports and times the result with the budget's probe, and fits the
milliseconds saved per channel removed. Global pruning then ranks channels by importance divided
by that saving (relative to the mean), so the channels that buy the most time per unit of
importance go first (the idea of HALP, Shen et al. 2022, with a measured table instead of a model).

Each group's trials are timed against the unpruned student in one interleaved, paired comparison
(``edgemm profile A B C --rounds N``, ``edgemm.profile.compare``), not in separate runs: on a shared
machine separate runs drift by more than a group's saving. The table also measures the channel
multiple the backend rewards (``measure_round_to``), which replaces the recipe's ``round_to``.

The table depends only on the student's layer shapes and on where and how it is measured, so it
is cached under the user cache, one file per (architecture, device profile, machine or SSH host).
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from edgemm.atomic import atomic_write_text
from edgemm.compress.recipe import Importance

RATIOS = (0.25, 0.5)  # the widths measured per group: this fraction of its channels removed
WIDE, STEPS = 32, (4, 8, 16)  # measure_round_to: groups rounded to WIDE, then these many channels removed
SPREAD = 4.0  # weights stay within [1/4, 4]: time moves the ranking, importance still counts


@dataclass
class LatencyTable:
    """Milliseconds saved per channel group, and how they were measured.

    Attributes:
        base_ms: The unpruned student's p50 of the budget's stage.
        groups: Per group (named by its root layer): ``channels``, the measured ``points``
            (``removed`` channels, ``latency_ms``, ``saved_ms`` against the unpruned student and
            its ``noise_ms``, both from the paired comparison) and the fitted ``ms_per_channel``
            saved (None: below the noise).
        measured: Device profile, precision, stage, where.
        round_to: The channel multiple measured on the backend (``measure_round_to``).
    """

    base_ms: float
    groups: dict[str, dict[str, Any]]
    measured: dict[str, Any]
    round_to: dict[str, Any] = field(default_factory=dict)

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


def _prune_to(model: nn.Module, cfg, name: str, keep: int) -> int:
    """Removes group ``name``'s least important channels from ``model`` down to ``keep``; returns
    how many were removed."""
    from edgemm.compress.prune import build_pruner, importance_of

    pruner = build_pruner(model, cfg)
    group = next(g for g in _groups(pruner) if _name(pruner, g) == name)
    removed = len(group[0].idxs) - keep
    if removed <= 0:
        return 0
    order = torch.argsort(importance_of(Importance.MAGNITUDE)(group))  # latency does not depend on which
    dep = group[0].dep
    pruner.DG.get_pruning_group(dep.target.module, dep.handler, order[:removed].tolist()).prune()
    return removed


def _savings(result: dict[str, Any]) -> list[tuple[float, float]]:
    """(ms saved against the first model, noise of that figure) per further model of a comparison."""
    base = result["rows"][0]["p50_ms"]
    return [(base * (1.0 - r["ratio"]), base * r["ratio_error"]) for r in result["rows"][1:]]


def build_table(model: nn.Module, cfg, probe, log: Callable[[str], None]) -> LatencyTable:
    """Measures every channel group of ``model`` pruned alone by each of ``RATIOS``, and the width
    granularity of the backend (``measure_round_to``).

    Each group's trials are timed against the unpruned student in one interleaved comparison
    (``probe.compare``), so the machine's drift cancels in the paired ratios; the standard error of
    their median over the rounds is the noise of each saving. A group whose largest saving is below
    twice its noise gets no slope (``ms_per_channel`` None, weight 1): "not measurable" must not
    read as "costs nothing".

    Args:
        model: The student (not changed: each measurement prunes a copy).
        cfg: The prune config (importance, rounding) of the run.
        probe: ``edgemm.deploy.probe.LatencyProbe``.
        log: Progress messages.
    """
    from edgemm.compress.prune import build_pruner

    precision = probe.measure(copy.deepcopy(model)).get("precision")  # what deploys (the fastest, for auto)
    pruner = build_pruner(copy.deepcopy(model), cfg)
    names = [(_name(pruner, g), len(g[0].idxs)) for g in _groups(pruner)]
    groups: dict[str, dict[str, Any]] = {}
    bases, noises = [], []
    for name, channels in names:
        trials, removed = [], []
        for ratio in RATIOS:  # kept count rounded down to the recipe's round_to
            trial = copy.deepcopy(model)
            k = _prune_to(trial, cfg, name, max(cfg.round_to, int(channels * (1 - ratio)) // cfg.round_to * cfg.round_to))
            if k and k not in removed:
                trials.append(trial)
                removed.append(k)
        groups[name] = {"channels": channels, "points": [], "ms_per_channel": None}
        if not trials:
            continue
        result = probe.compare([copy.deepcopy(model), *trials], precision=precision)
        bases.append(result["rows"][0]["p50_ms"])
        points = [{"removed": k, "latency_ms": row["p50_ms"], "saved_ms": saved, "noise_ms": noise}
                  for k, row, (saved, noise) in zip(removed, result["rows"][1:], _savings(result))]
        noises += [p["noise_ms"] for p in points]
        slope = sum(p["removed"] * p["saved_ms"] for p in points) / sum(p["removed"] ** 2 for p in points)
        resolved = any(p["saved_ms"] > 2 * p["noise_ms"] and p["saved_ms"] > 0 for p in points)
        groups[name].update(points=points, ms_per_channel=slope if resolved else None)
        log(f"  latency table: {name} ({channels} ch): " + (f"{1000 * slope:+.2f} µs saved per channel removed"
            if resolved else f"no saving above the noise ({1000 * max(p['noise_ms'] for p in points):.1f} µs)"))
    round_to = measure_round_to(model, cfg, probe, precision, log)
    b = probe.budget
    return LatencyTable(statistics.median(bases) if bases else 0.0, groups, {
        "device_profile": b.device.name, "stage": b.stage.value, "where": probe.where, "statistic": "p50",
        "precision": precision, "ratios": list(RATIOS), "method": "interleaved, paired with the unpruned student",
        "noise_ms": statistics.median(noises) if noises else 0.0}, round_to)


def measure_round_to(model: nn.Module, cfg, probe, precision: str | None, log: Callable[[str], None]
                     ) -> dict[str, Any]:
    """The channel multiple this backend rewards: a kernel that pads channels to blocks of P (SIMD
    lanes, NCHWc blocks, tensor-core tiles) saves nothing until a whole block goes.

    Every group of at least ``2 * WIDE`` channels is first rounded down to a multiple of ``WIDE``;
    then ``STEPS`` channels more are removed from each of them, and the results are compared with
    the rounded student in one interleaved run. Removing ``m`` channels saves about ``m / 16`` of
    what removing 16 saves when time follows channels; nothing, when blocks are wider than ``m``.
    The multiple is the smallest ``m`` that saves at least half its share; none when removing 16
    saves nothing measurable (then the recipe's ``round_to`` stays).

    Returns:
        ``multiple`` (None: unresolved), the savings per step, and why.
    """
    from edgemm.compress.prune import build_pruner

    pruner = build_pruner(copy.deepcopy(model), cfg)
    wide = [(_name(pruner, g), len(g[0].idxs)) for g in _groups(pruner) if len(g[0].idxs) >= 2 * WIDE]
    if not wide:
        return {"multiple": None, "why": f"no channel group of {2 * WIDE} or more to measure on"}
    rounded = copy.deepcopy(model)
    for name, channels in wide:
        _prune_to(rounded, cfg, name, channels // WIDE * WIDE)
    trials = []
    for m in STEPS:
        trial = copy.deepcopy(rounded)
        for name, channels in wide:
            _prune_to(trial, cfg, name, channels // WIDE * WIDE - m)
        trials.append(trial)
    result = probe.compare([rounded, *trials], precision=precision)
    savings = dict(zip(STEPS, _savings(result)))
    full, noise = savings[STEPS[-1]]
    out = {"savings_ms": {str(m): round(s, 5) for m, (s, _) in savings.items()},
           "noise_ms": {str(m): round(n, 5) for m, (_, n) in savings.items()}, "groups": [n for n, _ in wide]}
    if not full > 2 * noise:
        log(f"  round_to: removing {STEPS[-1]} channels per wide group saved {1000 * full:.1f} µs, not above the "
            f"noise ({1000 * noise:.1f} µs): the recipe's round_to {cfg.round_to} stays")
        return {**out, "multiple": None, "why": "no saving above the noise"}
    multiple = next(m for m in STEPS if savings[m][0] >= 0.5 * m / STEPS[-1] * full)
    log(f"  round_to: {multiple} (saved per step: " + ", ".join(f"{m} ch {1000 * s:.1f} µs" for m, (s, _) in
                                                              savings.items()) + ")")
    return {**out, "multiple": multiple, "why": f"the smallest step that saves at least half its share of {STEPS[-1]}"}


def table_key(model: nn.Module, cfg, probe) -> str:
    """What the table depends on: layer shapes, rounding, the profile, the stage, where it runs."""
    from edgemm.train.checkpoint import layer_shapes

    b = probe.budget
    what = {"version": 5, "layers": layer_shapes(model), "round_to": cfg.round_to, "importance": cfg.importance.value,
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
