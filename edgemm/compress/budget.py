"""Compression to a latency budget measured where the model will run (``edgemm compress --latency-budget``).

MACs are a poor proxy for milliseconds: a pruned layer may land on a slower kernel, int8 may cost
more than it saves, and the frontend or preprocessing may not shrink at all. So the prune stage,
given a budget, prunes in steps and after each step exports the student to the device profile's
target and precision, times the bundle with ``edgemm profile`` on this machine or on the device
over SSH (``edgemm.devices.remote``), fine-tunes, and stops at the first step within the budget.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from edgemm.devices import DeviceProfile, builtin_dir
from edgemm.export.formats import FORMATS
from edgemm.vocab import LatencyStage, Precision, PrecisionChoice, Target


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


def precisions(device: DeviceProfile) -> list[Precision]:
    """The precisions a measurement exports: the profile's, or for ``auto`` every one its target takes
    (``--precision auto`` deploys the fastest that verifies, so the fastest is what counts)."""
    choice = PrecisionChoice(device.precision)
    if choice.concrete is not None:
        return [choice.concrete]
    return list(FORMATS[Target(device.target)].precisions)


class LatencyProbe:
    """Exports a student the way the device profile deploys it and times it there.

    Args:
        budget: The budget and where to measure.
        labels: Class names (the checkpoint written for the export needs them).
        data: The data set (int8 exports calibrate on its training split).
        log: Progress messages.
    """

    def __init__(self, budget: LatencyBudget, *, labels: list[str], data: str, log: Callable[[str], None]) -> None:
        self.budget = budget
        self.labels = labels
        self.data = data
        self.log = log
        self._remote = None
        if budget.remote:
            from edgemm.devices.remote import Remote, check_edgemm

            self._remote = Remote.parse(budget.remote, budget.ssh_config, budget.remote_edgemm)
            check_edgemm(self._remote, budget.remote_timeout)  # fail before any training, not after the first step

    @property
    def where(self) -> str:
        """Where measurements are taken: the SSH URL, or this machine's CPU."""
        if self._remote is not None:
            return self._remote.url
        from edgemm.profile.stats import cpu_model

        return f"this machine ({cpu_model()})"

    def met(self, measurement: dict[str, Any]) -> bool:
        return measurement["latency_ms"] <= self.budget.ms

    def measure(self, model: nn.Module) -> dict[str, Any]:
        """The p90 (and p50) of the budget's stage for ``model`` as deployed, fastest precision first."""
        from edgemm.train.checkpoint import atomic_torch_save, make_checkpoint

        with tempfile.TemporaryDirectory(prefix="edgemm-budget-") as tmp:
            ckpt = Path(tmp) / "model.pt"
            atomic_torch_save(make_checkpoint(model.cpu(), labels=self.labels, data=self.data), ckpt)
            return self.measure_checkpoint(ckpt)

    def measure_checkpoint(self, checkpoint: Path) -> dict[str, Any]:
        """As ``measure``, for a checkpoint file (the final model, with its int8 program)."""
        from edgemm.export import export

        best: dict[str, Any] | None = None
        for precision in precisions(self.budget.device):
            with tempfile.TemporaryDirectory(prefix="edgemm-budget-") as tmp:
                bundle = Path(tmp) / f"probe-{precision.value}.edgemm"
                export(checkpoint, target=self.budget.device.target, precision=precision, out=bundle,
                       calib_data=self.data, calib_samples=32, verify_output=False, log=lambda s: None)
                report = self._profile(bundle)
            stats = report["stages"][self.budget.stage.value]
            m = {"latency_ms": stats["p90_ms"], "p50_ms": stats["p50_ms"], "precision": precision.value,
                 "backend": report["backend"], "provider": report["device"]}
            if best is None or m["latency_ms"] < best["latency_ms"]:
                best = m
        return best

    def _profile(self, bundle: Path) -> dict[str, Any]:
        """``edgemm profile --json`` in a fresh process, here or on the device: never in this one,
        whose torch thread pool, after training, slowed onnxruntime by 50 % and more (measured:
        the same bundle 1.17 ms p90 in a fresh process, 1.73 ms here after a compress stage)."""
        if self._remote is not None:
            from edgemm.devices.remote import profile_remote

            return profile_remote(self._remote, bundle, self._args(shipped_only=True), self.budget.remote_timeout)
        cmd = [sys.executable, "-m", "edgemm.cli", "profile", str(bundle), "--json", *self._args(shipped_only=False)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.budget.remote_timeout)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["no output"]
            raise RuntimeError(f"latency budget: edgemm profile failed on {bundle.name}: {lines[-1]}")
        return json.loads(proc.stdout)

    def _args(self, shipped_only: bool) -> list[str]:
        """The ``edgemm profile`` options that apply the device profile: by name (shipped), by file
        (here), else field by field."""
        d, b = self.budget.device, self.budget
        args = ["--runs", str(b.runs), "--layers", "0", "--frame-size", "{}x{}".format(*d.input_size)]
        if Path(d.source).parent == builtin_dir():
            return args + ["--device-profile", d.name]
        if not shipped_only and Path(d.source).is_file():
            return args + ["--device-profile", str(Path(d.source).resolve())]
        return args + ["--backend", d.backend, "--provider", d.device] + (["--threads", str(d.threads)] if d.threads else [])


def budget_schedule(cfg, budget: LatencyBudget):
    """The prune config that reaches ``budget.max_ratio`` in ``budget.steps`` equal steps; per-branch
    ratios of the recipe keep their proportion to its global ratio."""
    scale = budget.max_ratio / cfg.ratio if cfg.ratio else 1.0

    def scaled(r: float | None) -> float | None:
        return None if r is None else min(r * scale, 0.95)

    return dataclasses.replace(cfg, ratio=budget.max_ratio, steps=budget.steps, image_ratio=scaled(cfg.image_ratio),
                               audio_ratio=scaled(cfg.audio_ratio), fusion_ratio=scaled(cfg.fusion_ratio))


def prune_to_budget(model: nn.Module, cfg, probe: LatencyProbe, *, log: Callable[[str], None], **kw: Any
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
    trace = [start] + prune(model, cfg, probe=probe, log=log, **kw)
    if not trace[-1]["met"]:
        best = min(trace, key=lambda r: r["latency_ms"])
        log(f"  the budget of {budget.ms:g} ms was not met: the closest was {best['latency_ms']:.3f} ms at step "
            f"{best['step']} (ratio {best['ratio']:g}); raise max_ratio, lower the precision, or raise the budget")
    return trace, table.to_dict() if table else None


def summary(probe: LatencyProbe, steps: list[dict[str, Any]], table: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's ``latency_budget``: the budget, where it was measured, each step, the outcome,
    the latency table of latency-aware pruning."""
    met = [s for s in steps if s.get("met")]
    closest = min(steps, key=lambda s: s["latency_ms"])
    out = {**probe.budget.to_dict(), "measured_on": probe.where, "met": bool(met),
           "reached_ms": (met[0] if met else closest)["latency_ms"], "steps": steps}
    if table is not None:
        out["latency_table"] = table
    return out
