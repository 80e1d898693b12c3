"""Energy per inference from the power sensors a device exposes (torch-free, sysfs and tools only).

A meter is either a power sensor read as watts (a Jetson's INA3221 input rail, an INA2xx board
monitor, a Raspberry Pi 5's PMIC) or an energy counter read as joules (Intel/AMD RAPL, an NVIDIA
GPU's NVML counter). Either way
``Sampler`` turns its readings into cumulative joules over time, so the energy of any window is
the difference of two interpolated values. ``EnergyProbe`` measures the idle power first, then the
timed runs, and reports joules per inference with the idle power subtracted (both stated), mean
and peak watts, the spread over blocks of runs, the sampling rate, the method and the power mode.

Where no sensor is readable the answer is ``unavailable`` with the reason: never an estimate.
``EDGEMM_POWER_ROOT`` reads the sensors under another root than ``/`` (a container that mounts the
host's ``/sys`` elsewhere; the tests' recorded device trees).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Meter(Protocol):
    """One power source. ``method`` names it (``ina3221:VDD_IN``, ``rapl:package-0`` …);
    ``counter`` says whether ``read`` returns cumulative joules (True) or instantaneous watts."""

    method: str
    counter: bool
    max_hz: float

    def read(self) -> float: ...


@dataclass(frozen=True)
class Unavailable:
    """No readable sensor; ``reason`` says what was looked for and why it could not be read."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": "unavailable", "reason": self.reason}


class SysfsPower:
    """Watts from one sysfs file holding an integer power (``scale`` units per watt: 1e3 for mW, 1e6 for µW)."""

    counter = False
    max_hz = 200.0

    def __init__(self, path: Path, scale: float, method: str) -> None:
        self.path, self.scale, self.method = path, scale, method

    def read(self) -> float:
        return int(self.path.read_text()) / self.scale


def readable(meter: Meter) -> Meter | Unavailable:
    """``meter`` if one reading succeeds, else why it cannot be read."""
    try:
        meter.read()
    except (OSError, ValueError) as e:
        return Unavailable(f"{meter.method}: unreadable ({e})")
    return meter


def power_root() -> Path:
    """Where the sensors are read: ``$EDGEMM_POWER_ROOT``, else ``/``."""
    return Path(os.environ.get("EDGEMM_POWER_ROOT") or "/")


def find_meter(root: Path | None = None, gpu: bool = False) -> Meter | Unavailable:
    """The most direct readable meter of this machine, in order: the Jetson input rail, a board
    monitor, the Raspberry Pi 5 PMIC, RAPL, an NVIDIA GPU's NVML counter — NVML first when ``gpu``
    (inference on a CUDA or TensorRT provider). Reasons from every family are kept for the answer."""
    from edgemm.profile.energy import ina2xx, ina3221, nvml, pi5, rapl

    root = power_root() if root is None else root
    reasons = []
    for family in ((nvml,) if gpu else ()) + (ina3221, ina2xx, pi5, rapl) + (() if gpu else (nvml,)):
        found = family.find(root)
        if not isinstance(found, Unavailable):
            return found
        reasons.append(found.reason)
    return Unavailable("; ".join(reasons))


class Sampler:
    """Reads ``meter`` in a thread at up to ``hz`` and keeps (perf_counter_ns, cumulative joules)."""

    def __init__(self, meter: Meter, hz: float = 50.0) -> None:
        self.meter = meter
        self.hz = min(hz, meter.max_hz)
        self.times: list[int] = []
        self.joules: list[float] = []
        self.watts: list[float] = []  # per sample interval
        self.errors: list[str] = []
        self._last_w: float | None = None  # a power meter's previous reading (trapezoid rule)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgemm-energy", daemon=True)

    def __enter__(self) -> "Sampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(1.0 / self.hz):
            self._sample()

    def _sample(self) -> None:
        try:
            value = self.meter.read()
        except (OSError, ValueError) as e:  # a sensor that stops answering ends the series, it does not crash the run
            self.errors.append(str(e))
            return
        now = time.perf_counter_ns()
        if not self.times:
            self.times.append(now)
            self.joules.append(value if self.meter.counter else 0.0)
            self._last_w = None if self.meter.counter else value
            return
        dt = (now - self.times[-1]) / 1e9
        if self.meter.counter:
            total = value
            w = (value - self.joules[-1]) / dt if dt > 0 else 0.0
        else:
            total = self.joules[-1] + 0.5 * (self._last_w + value) * dt  # trapezoid
            w, self._last_w = value, value
        self.times.append(now)
        self.joules.append(total)
        self.watts.append(w)

    def at(self, t_ns: int) -> float:
        """Cumulative joules at ``t_ns``, interpolated between the samples around it."""
        ts, js = self.times, self.joules
        if t_ns <= ts[0]:
            return js[0]
        for i in range(1, len(ts)):
            if t_ns <= ts[i]:
                span = ts[i] - ts[i - 1]
                return js[i - 1] + (js[i] - js[i - 1]) * ((t_ns - ts[i - 1]) / span if span else 1.0)
        return js[-1]


def summarize(sampler: Sampler, idle: tuple[int, int], runs: list[tuple[int, int]], blocks: int = 10
              ) -> dict[str, Any]:
    """Joules per inference over ``runs`` ((start, end) ns each) with the idle power over ``idle``
    subtracted; the spread is over ``blocks`` consecutive groups of runs."""
    if len(sampler.times) < 3 or not runs:
        return Unavailable(f"{sampler.meter.method}: too few readings ({len(sampler.times)}; "
                           f"{'; '.join(sampler.errors[:1]) or 'the timed runs were shorter than one sample'})").to_dict()
    idle_s = (idle[1] - idle[0]) / 1e9
    idle_w = (sampler.at(idle[1]) - sampler.at(idle[0])) / idle_s
    start, end = runs[0][0], runs[-1][1]
    seconds = (end - start) / 1e9
    total = sampler.at(end) - sampler.at(start)
    per_block = []
    size = max(1, len(runs) // blocks)
    for i in range(0, len(runs) - size + 1, size):
        a, b = runs[i][0], runs[i + size - 1][1]
        per_block.append((sampler.at(b) - sampler.at(a) - idle_w * (b - a) / 1e9) / size)
    inside = [w for t, w in zip(sampler.times[1:], sampler.watts) if start <= t <= end]
    return {
        "status": "measured",
        "method": sampler.meter.method,
        "joules_per_inference": (total - idle_w * seconds) / len(runs),
        "joules_per_inference_std": statistics.stdev(per_block) if len(per_block) > 1 else 0.0,
        "blocks": len(per_block),
        "gross_joules_per_inference": total / len(runs),
        "mean_w": total / seconds,
        "peak_w": max(inside) if inside else total / seconds,
        "idle_w": idle_w,
        "idle_seconds": idle_s,
        "seconds": seconds,
        "sample_hz": (len(sampler.times) - 1) / ((sampler.times[-1] - sampler.times[0]) / 1e9),
        "samples": len(sampler.times),
        "power_mode": power_mode(),
    }


def energy_line(energy: dict[str, Any]) -> str:
    """One line of ``summarize``'s answer (or of ``Unavailable.to_dict``'s) for the Markdown report."""
    if energy.get("status") != "measured":
        return f"unavailable: {energy.get('reason', '')}"
    e = energy
    return (f"{1e3 * e['joules_per_inference']:.3f} mJ/inference (± {1e3 * e['joules_per_inference_std']:.3f} over "
            f"{e['blocks']} blocks) above idle {e['idle_w']:.2f} W; mean {e['mean_w']:.2f} W, peak {e['peak_w']:.2f} W "
            f"while inferring; {e['method']} at {e['sample_hz']:.0f} Hz"
            + (f"; {', '.join(f'{k} {v}' for k, v in e['power_mode'].items())}" if e.get("power_mode") else ""))


def power_mode(root: Path | None = None) -> dict[str, Any]:
    """What the figure depends on: the CPU governor, and a Jetson's nvpmodel mode where readable."""
    root = power_root() if root is None else root
    mode: dict[str, Any] = {}
    governor = root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    try:
        mode["cpu_governor"] = governor.read_text().strip()
    except OSError:
        pass
    status = root / "var/lib/nvpmodel/status"  # JetPack writes the current mode here ("pmode:0000 ...")
    try:
        mode["nvpmodel"] = status.read_text().strip()
    except OSError:
        pass
    return mode
