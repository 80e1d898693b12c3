"""The latency probe of ``edgemm compress --latency-budget``: a student exported the way a device
profile deploys it and timed by ``edgemm profile`` in a fresh process, on this machine or on the
device over SSH (``edgemm.devices.remote``). It sits above export and profile; compression knows it
by its protocol (``edgemm.compress.prune.Probe``).

    >>> from edgemm.compress import compress
    >>> from edgemm.compress.budget import LatencyBudget
    >>> from edgemm.deploy.probe import LatencyProbe
    >>> from edgemm.devices import load_profile
    >>> budget = LatencyBudget(20.0, load_profile("raspberry-pi-5"), remote="ssh://pi@raspberrypi.local")
    >>> compress(out="runs/pi", data="my.csv", latency=LatencyProbe(budget))
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from torch import nn

from edgemm.atomic import scratch
from edgemm.compress.budget import LatencyBudget
from edgemm.devices import DeviceProfile, builtin_dir
from edgemm.errors import EdgemmError
from edgemm.export.formats import FORMATS
from edgemm.vocab import Precision, PrecisionChoice, Target

COMPARE_ROUNDS = 10  # interleaved rounds of ``LatencyProbe.compare``


class ProbeError(EdgemmError, RuntimeError):
    """Timing a pruning step failed here (the backend is missing, the profile cannot run the target, a hang)."""


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
        labels: Class names (the checkpoint written for the export needs them); ``compress``
            sets them with ``bind`` when it knows them.
        data: The data set (int8 exports calibrate on its training split); likewise.

    Raises:
        RemoteError: With ``budget.remote``, the device cannot be reached or has another edgemm
            (checked when the probe is made, before any training).
    """

    def __init__(self, budget: LatencyBudget, *, labels: list[str] | None = None, data: str | None = None) -> None:
        self.budget = budget
        self.labels = labels
        self.data = data
        self._remote = None
        if budget.remote:
            from edgemm.devices.remote import Remote, check_edgemm

            self._remote = Remote.parse(budget.remote, budget.ssh_config, budget.remote_edgemm)
            check_edgemm(self._remote, budget.remote_timeout)  # fail before any training, not after the first step

    def bind(self, *, labels: list[str], data: str) -> None:
        """The run's class names and data set (what exports need)."""
        self.labels, self.data = labels, data

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
        with scratch("budget") as tmp:
            return self.measure_checkpoint(self._save(model, Path(tmp) / "model.pt"))

    def measure_checkpoint(self, checkpoint: Path) -> dict[str, Any]:
        """As ``measure``, for a checkpoint file (the final model, with its int8 program)."""
        best: dict[str, Any] | None = None
        for precision in precisions(self.budget.device):
            with scratch("budget") as tmp:
                bundle = self._export(checkpoint, precision, Path(tmp) / f"probe-{precision.value}.edgemm")
                report = self._profile([bundle], self._args(shipped_only=self._remote is not None))
            stats = report["stages"][self.budget.stage.value]
            m = {"latency_ms": stats["p90_ms"], "p50_ms": stats["p50_ms"], "precision": precision.value,
                 "backend": report["backend"], "provider": report["device"]}
            if best is None or m["latency_ms"] < best["latency_ms"]:
                best = m
        return best

    def compare(self, models: list[nn.Module], precision: Precision | None = None,
                rounds: int = COMPARE_ROUNDS) -> dict[str, Any]:
        """``models`` exported the way the profile deploys them (at ``precision``: default the
        profile's first) and timed against each other in interleaved rounds
        (``edgemm.profile.compare``): paired ratios to the first model resolve savings that separate
        measurements' drift hides. Returns the comparison (``Comparison.to_dict``).
        """
        precision = Precision(precision) if precision else precisions(self.budget.device)[0]
        with scratch("budget") as tmp:
            bundles = [self._export(self._save(model, Path(tmp) / f"model-{i}.pt"), precision,
                                    Path(tmp) / f"probe-{i}.edgemm") for i, model in enumerate(models)]
            args = self._args(shipped_only=self._remote is not None, runs=max(20, self.budget.runs // rounds))
            return self._profile(bundles, args + ["--rounds", str(rounds), "--stage", self.budget.stage.value])

    def _save(self, model: nn.Module, path: Path) -> Path:
        """``model`` as a checkpoint with the run's labels and data (weights copied to CPU)."""
        from edgemm.train.checkpoint import atomic_torch_save, make_checkpoint

        atomic_torch_save(make_checkpoint(model, labels=self.labels, data=self.data), path)
        return path

    def _export(self, checkpoint: Path, precision: Precision, bundle: Path) -> Path:
        """The bundle the device profile deploys, its frontend placement included (int8 calibrated on
        32 samples; not verified: only timed)."""
        from edgemm.export import export

        device = self.budget.device
        export(checkpoint, target=device.target, precision=precision, out=bundle, frontend=device.frontend,
               calib_data=self.data, calib_samples=32, verify=False, log=lambda s: None)
        return bundle

    def _profile(self, bundles: list[Path], args: list[str]) -> dict[str, Any]:
        """``edgemm profile BUNDLES --json ARGS`` in a fresh process, here or on the device (one
        bundle: its profile; several: their comparison). Never in this process, whose torch thread
        pool, after training, slowed onnxruntime by 50 % and more (measured: the same bundle 1.17 ms
        p90 in a fresh process, 1.73 ms here after a compress stage)."""
        timeout = self.budget.remote_timeout * len(bundles)
        if self._remote is not None:
            from edgemm.devices.remote import compare_remote, profile_remote

            if len(bundles) == 1:
                return profile_remote(self._remote, bundles[0], args, timeout)
            return compare_remote(self._remote, bundles, args, timeout)
        return self._local(bundles, args, timeout)

    def _local(self, bundles: list[Path], args: list[str], timeout: float) -> dict[str, Any]:
        """``edgemm profile BUNDLES --json ARGS`` in a fresh process on this machine."""
        cmd = [sys.executable, "-m", "edgemm.cli", "profile", *map(str, bundles), "--json", *args]
        names = ", ".join(b.name for b in bundles)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProbeError(f"latency budget: edgemm profile did not finish in {timeout:g} s on {names} "
                             "(raise --remote-timeout, or lower --budget-runs)") from None
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["no output"]
            raise ProbeError(f"latency budget: edgemm profile failed on {names}: {lines[-1]}")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise ProbeError(f"latency budget: edgemm profile printed no JSON report (began {proc.stdout[:80]!r})") from None

    def _args(self, shipped_only: bool, runs: int | None = None) -> list[str]:
        """The ``edgemm profile`` options that apply the device profile: by name (shipped), by file
        (here), else field by field."""
        d, b = self.budget.device, self.budget
        args = ["--runs", str(runs or b.runs), "--layers", "0", "--frame-size", "{}x{}".format(*d.input_size)]
        if Path(d.source).parent == builtin_dir():
            return args + ["--device-profile", d.name]
        if not shipped_only and Path(d.source).is_file():
            return args + ["--device-profile", str(Path(d.source).resolve())]
        return args + ["--backend", d.backend, "--provider", d.provider] + (["--threads", str(d.threads)] if d.threads else [])
