"""Compression to a latency budget measured where the model will run (``edgemm compress --latency-budget``).

MACs are a poor proxy for milliseconds: a pruned layer may land on a slower kernel, int8 may cost
more than it saves, and the frontend or preprocessing may not shrink at all. So the prune stage,
given a budget, prunes in steps; after each step a probe (``edgemm.deploy.probe.LatencyProbe``:
export to the device profile's target and precision, ``edgemm profile`` on this machine or on the
device over SSH) times the student, which is then fine-tuned; the first step within the budget is
the last. The probe lives above export, so this module knows it only by its protocol
(``edgemm.compress.prune.Probe``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from edgemm.devices import DeviceProfile
from edgemm.vocab import LatencyStage

if TYPE_CHECKING:  # the config parses without torch (the CLI builds its flags from it)
    from torch import nn

    from edgemm.compress.prune import Probe


@dataclass(frozen=True)
class LatencyBudget:
    """What the student must meet, and where it is measured.

    Attributes:
        ms: The budget: the p90 of ``stage``, in milliseconds.
        device: The device profile: target, precision, backend, provider, threads, frame size.
        stage: ``end_to_end`` (what ``edgemm profile`` checks against a profile's budget:
            preprocessing of a camera frame, inference, post-processing) or ``inference`` alone.
        remote: ``ssh://[user@]host[:port]`` of the device, or None to measure on this machine.
        ssh_config: SSH configuration file for ``remote`` (``ssh -F``).
        remote_edgemm: The edgemm command on the device.
        remote_timeout: Seconds allowed for each remote step.
        runs: Timed predictions per measurement.
        max_ratio: Prune at most this fraction of each group's channels.
        step_ratio: The fraction removed per step (the steps are ``step_ratio``, ``2 step_ratio``, ...).
        latency_aware: Rank channels globally by importance per millisecond they cost on the device
            (``edgemm.compress.latency_table``) instead of pruning every group by the same ratio.
    """

    ms: float
    device: DeviceProfile
    stage: LatencyStage = LatencyStage.END_TO_END
    remote: str | None = None
    ssh_config: str | None = None
    remote_edgemm: str = "edgemm"
    remote_timeout: float = 600.0
    runs: int = 200
    max_ratio: float = 0.9
    step_ratio: float = 0.1
    latency_aware: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", LatencyStage(self.stage))
        if not 0 < self.ms < math.inf:
            raise ValueError(f"--latency-budget: expected a positive number of milliseconds, got {self.ms!r}")
        if not 0 < self.step_ratio <= self.max_ratio < 1:
            raise ValueError(f"latency budget: need 0 < step_ratio <= max_ratio < 1, got step_ratio={self.step_ratio}, "
                             f"max_ratio={self.max_ratio}")
        if self.runs < 1:
            raise ValueError(f"latency budget: runs must be >= 1, got {self.runs}")

    @property
    def steps(self) -> int:
        """Pruning steps to reach ``max_ratio``."""
        return math.ceil(round(self.max_ratio / self.step_ratio, 6))

    def to_dict(self) -> dict[str, Any]:
        """What the report and the stage checkpoint record (a change means the prune stage runs again)."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "device"}
        d["stage"] = self.stage.value
        d["device_profile"] = self.device.name
        d["device"] = {k: v for k, v in self.device.to_dict().items() if k not in ("description", "source")}
        return d


def budget_schedule(cfg, budget: LatencyBudget):
    """The prune config that reaches ``budget.max_ratio`` in ``budget.steps`` equal steps; per-branch
    ratios of the recipe keep their proportion to its global ratio."""
    scale = budget.max_ratio / cfg.ratio if cfg.ratio else 1.0

    def scaled(r: float | None) -> float | None:
        return None if r is None else min(r * scale, 0.95)

    return dataclasses.replace(cfg, ratio=budget.max_ratio, steps=budget.steps, image_ratio=scaled(cfg.image_ratio),
                               audio_ratio=scaled(cfg.audio_ratio), fusion_ratio=scaled(cfg.fusion_ratio))


def prune_to_budget(model: nn.Module, cfg, probe: Probe, *, log: Callable[[str], None], **kw: Any
                    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Prunes ``model`` in place in equal steps until the probe measures it within the budget.

    The unpruned model is measured first (step 0): when it already meets the budget nothing is
    pruned. Otherwise each step prunes ``budget.step_ratio`` more, is measured, fine-tuned, and
    the first step within the budget is the last. ``kw`` goes to ``edgemm.compress.prune.prune``.

    Returns:
        One row per step, step 0 included (ratio, MACs, parameters, the measurement, ``met``),
        and the latency table when the budget is latency-aware.
    """
    from edgemm.compress.prune import count_macs_params, prune

    budget = probe.budget
    log(f"  latency budget: p90 {budget.stage.value} <= {budget.ms:g} ms on {budget.device.name} "
        f"({budget.device.target} {budget.device.precision}, {budget.device.backend}), measured on {probe.where}")
    macs, params = count_macs_params(model)
    start = {"step": 0, "ratio": 0.0, "macs": macs, "params": params, **probe.measure(model)}
    start["met"] = probe.met(start)
    log(f"  unpruned: {start['latency_ms']:.3f} ms p90 ({start['precision']}, {start['backend']})")
    if start["met"]:
        log("  the unpruned student already meets the budget: nothing pruned")
        return [start], None
    cfg, table = budget_schedule(cfg, budget), None
    if budget.latency_aware:
        from edgemm.compress.latency_table import cached_table, latency_importance
        from edgemm.data.synthetic import default_cache_dir

        cfg = dataclasses.replace(cfg, global_pruning=True)
        table = cached_table(model, cfg, probe, default_cache_dir() / "latency_tables", log)
        kw["importance"] = latency_importance(model, cfg, table)
        multiple = table.round_to.get("multiple")
        if multiple and multiple != cfg.round_to:  # the channel multiple this backend rewards, measured
            log(f"  round_to {multiple} (measured on the device) instead of the recipe's {cfg.round_to}")
            cfg = dataclasses.replace(cfg, round_to=multiple)
    trace = [start] + prune(model, cfg, probe=probe, log=log, **kw)
    if not trace[-1]["met"]:
        best = min(trace, key=lambda r: r["latency_ms"])
        log(f"  the budget of {budget.ms:g} ms was not met: the closest was {best['latency_ms']:.3f} ms at step "
            f"{best['step']} (ratio {best['ratio']:g}); raise max_ratio, lower the precision, or raise the budget")
    return trace, table.to_dict() if table else None


def summary(probe: Probe, steps: list[dict[str, Any]], table: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's ``latency_budget``: the budget, where it was measured, each step, the outcome,
    the latency table of latency-aware pruning."""
    met = [s for s in steps if s.get("met")]
    closest = min(steps, key=lambda s: s["latency_ms"])
    out = {**probe.budget.to_dict(), "measured_on": probe.where, "met": bool(met),
           "reached_ms": (met[0] if met else closest)["latency_ms"], "steps": steps}
    if table is not None:
        out["latency_table"] = table
    return out
