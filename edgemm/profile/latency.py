"""``edgemm profile``: per-stage latency percentiles of a bundle, load time, memory, per-layer times.

The stages are those of one live prediction (``Session.predict``): preprocessing of a camera-sized
frame and an audio window, inference, post-processing, and end to end. Each is timed with
``perf_counter_ns`` around the same calls the live runtime makes, after a warm-up. Per-layer times
come from the backend's own profiler in a second, separately opened session, so profiling overhead
never leaks into the stage timings.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgemm.profile.energy import Sampler, Unavailable, energy_line, find_meter, summarize
from edgemm.profile.stats import LatencyStats, machine, peak_rss_mb
from edgemm.profile.thermal import read_thermal
from edgemm.profile.thermal import summary as thermal_summary
from edgemm.runtime.backends import LayerProfileUnavailable
from edgemm.runtime.session import Session

STAGES = ("preprocess", "inference", "postprocess", "end_to_end")


@dataclass(frozen=True)
class ProfileConfig:
    """How to profile.

    Attributes:
        runs: Timed predictions (at least).
        min_time: Keep running until this many seconds have passed as well.
        warmup: Untimed predictions first (allocations, JIT, caches).
        backend: Backend name (default: the bundle's own).
        provider: Execution provider (onnxruntime) or device (OpenVINO).
        threads: Intra-op threads (None: the backend's default).
        frame_size: (width, height) of the synthetic camera frame fed to preprocessing.
        layers: How many of the slowest layers to report (0: skip the per-layer pass).
        layer_runs: Predictions in the per-layer pass.
        seed: Seed of the synthetic inputs.
        options: Backend options (OpenVINO properties, execution-provider options).
        energy: Measure joules per inference where a power sensor is readable
            (``edgemm.profile.energy``): the idle power first, then the timed runs.
        idle_seconds: How long the idle power is measured.
        energy_seconds: With a sensor, the timed runs last at least this long (enough readings).
        fps: Rate of the simulated live run: each prediction's audio window is ``1 / fps`` s after
            the previous one's, as in ``edgemm run`` (a runtime frontend computes only the STFT
            frames a window adds; a graph frontend computes them all either way).
    """

    runs: int = 200
    min_time: float = 0.0
    warmup: int = 20
    backend: str | None = None
    provider: str | None = None
    threads: int | None = None
    frame_size: tuple[int, int] = (640, 480)
    layers: int = 10
    layer_runs: int = 50
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    fps: float = 30.0
    energy: bool = True
    idle_seconds: float = 1.0
    energy_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 1000:
            raise ValueError(f"profile: fps must be in (0, 1000], got {self.fps}")
        if self.runs < 1 or self.warmup < 0 or self.layers < 0 or self.layer_runs < 1 or self.min_time < 0:
            raise ValueError("profile: runs and layer_runs must be >= 1; warmup, layers and min_time >= 0 "
                             f"(got runs={self.runs}, warmup={self.warmup}, layers={self.layers}, "
                             f"layer_runs={self.layer_runs}, min_time={self.min_time})")


@dataclass
class ProfileReport:
    """What ``edgemm profile --json`` prints (``to_dict``)."""

    bundle: str
    target: str
    precision: str
    backend: str
    device: str
    threads: int | str
    stages: dict[str, LatencyStats]
    load_ms: float
    peak_rss_mb: float
    model_bytes: int
    throughput_per_s: float
    runs: int
    frame_size: tuple[int, int]
    machine: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    layers_note: str = ""
    device_profile: str | None = None
    latency_budget_ms: float | None = None
    within_budget: bool | None = None  # p90 end to end <= the device profile's budget
    remote: dict[str, Any] | None = None  # measured over SSH: where, with which edgemm (``--remote``)
    providers: dict[str, int] = field(default_factory=dict)  # nodes per execution provider that ran them (onnxruntime)
    thermal: dict[str, Any] | None = None  # before / after the timed runs, where exposed (``edgemm.profile.thermal``)
    energy: dict[str, Any] | None = None  # joules per inference, or why not (``edgemm.profile.energy``)
    end_to_end_ms: list[float] = field(default_factory=list, repr=False)  # raw, for the histogram

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["end_to_end_ms"]
        d["stages"] = {k: v.to_dict() for k, v in self.stages.items()}
        d["frame_size"] = list(self.frame_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProfileReport":
        """The report ``to_dict`` wrote (another machine's ``edgemm profile --json``); unknown keys
        are ignored, so a newer device's report still reads."""
        known = {f.name for f in fields(cls)} - {"end_to_end_ms"}
        kw = {k: v for k, v in d.items() if k in known}
        kw["stages"] = {k: LatencyStats(**v) for k, v in d["stages"].items()}
        kw["frame_size"] = tuple(d["frame_size"])
        return cls(**kw)


def synthetic_inputs(session: Session, frame_size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A camera-sized RGB frame and one audio window at the model's rate (as the microphone source
    delivers it): noise, since preprocessing and inference cost do not depend on content."""
    rng = np.random.default_rng(seed)
    w, h = frame_size
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(session.preprocess.audio.clip_samples)).astype(np.float32)
    return frame, audio


class LiveAudio:
    """Consecutive audio windows of a simulated live stream, ``step`` samples apart (rounded to the
    session's alignment, as ``edgemm run`` aligns them), cut from a periodic noise signal so that
    overlapping windows share their samples however long the run.

    Args:
        session: The session (its rate, window length and alignment).
        fps: Windows per second.
        seed: Noise seed.
    """

    def __init__(self, session: Session, fps: float, seed: int = 0) -> None:
        a, align = session.preprocess.audio, session.align
        self.clip = a.clip_samples
        self.step = max(align, int(a.sample_rate / fps) // align * align)
        period = self.step * max(1, -(-4 * a.sample_rate // self.step))  # >= 4 s, whole steps
        noise = (0.1 * np.random.default_rng(seed).standard_normal(period)).astype(np.float32)
        self._signal = np.tile(noise, 2 + self.clip // period)
        self._period, self.start = period, 0

    def next(self) -> tuple[np.ndarray, int]:
        """The next window and the stream index of its first sample."""
        at = self.start % self._period
        self.start += self.step
        return self._signal[at:at + self.clip], self.start - self.step


def _layer_pass(bundle: Path, config: ProfileConfig, frame: np.ndarray, audio: np.ndarray
                ) -> tuple[list, str, dict[str, int]]:
    session = Session(bundle, backend=config.backend, provider=config.provider, threads=config.threads, profile=True,
                      options=config.options)
    try:
        for _ in range(config.layer_runs):
            session.predict(frame, audio)
        times = session.backend.layer_times()
    except LayerProfileUnavailable as e:
        return [], str(e), {}
    total = sum(t.mean_ms for t in times) or 1.0
    rows = [{"name": t.name, "op": t.op, "mean_ms": t.mean_ms, "share": t.mean_ms / total, "calls": t.calls,
             **({"provider": t.provider} if t.provider else {})} for t in times[: config.layers]]
    providers = dict(Counter(t.provider for t in times if t.provider).most_common())
    return rows, (f"{session.backend.name} profiler, {config.layer_runs} runs; {len(times)} layers, "
                  f"{total:.3f} ms summed per run"), providers


def profile(bundle: str | Path, config: ProfileConfig | None = None, *, device_profile=None) -> ProfileReport:
    """Profiles one bundle on this machine.

    Args:
        bundle: The bundle directory.
        config: Runs, backend, threads and input size.
        device_profile: The ``DeviceProfile`` the config came from: its name and latency budget go
            on the report, with whether p90 end to end meets the budget.
    """
    config = config or ProfileConfig()
    bundle = Path(bundle)
    t0 = time.perf_counter_ns()
    session = Session(bundle, backend=config.backend, provider=config.provider, threads=config.threads,
                      options=config.options)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    frame, audio = synthetic_inputs(session, config.frame_size, config.seed)
    live = LiveAudio(session, config.fps, config.seed)
    for _ in range(config.warmup):
        window, at = live.next()
        session.predict_batch([frame], [window], audio_starts=[at])
    timings: dict[str, list[int]] = {s: [] for s in STAGES}
    spans: list[tuple[int, int]] = []
    on_gpu = any(name in session.backend.device for name in ("CUDA", "Tensorrt", "TensorRT"))
    meter = find_meter(gpu=on_gpu) if config.energy else Unavailable("not measured (--no-energy)")
    sampler = None if isinstance(meter, Unavailable) else Sampler(meter)
    min_time = max(config.min_time, config.energy_seconds) if sampler else config.min_time
    heat = read_thermal()
    with sampler or contextlib.nullcontext():
        idle_start = time.perf_counter_ns()
        if sampler:
            time.sleep(config.idle_seconds)
        idle = (idle_start, time.perf_counter_ns())
        start = time.perf_counter()
        while len(timings["end_to_end"]) < config.runs or time.perf_counter() - start < min_time:
            window, at = live.next()
            a = time.perf_counter_ns()
            pred = session.predict_batch([frame], [window], audio_starts=[at])[0]
            b = time.perf_counter_ns()
            for stage, ms in pred.stages.items():
                timings[stage].append(int(ms * 1e6))
            timings["end_to_end"].append(b - a)
            spans.append((a, b))
        elapsed = time.perf_counter() - start
    energy = summarize(sampler, idle, spans) if sampler else meter.to_dict()
    after = read_thermal()
    stages = {s: LatencyStats.from_ns(v) for s, v in timings.items()}
    layers, note, providers = (_layer_pass(bundle, config, frame, audio) if config.layers
                               else ([], "skipped (--layers 0)", {}))
    m = session.manifest
    return ProfileReport(
        bundle=str(bundle), target=m.target, precision=m.precision, backend=session.backend.name,
        device=session.backend.device, threads=config.threads or "default", stages=stages, load_ms=load_ms,
        peak_rss_mb=peak_rss_mb(), model_bytes=sum(f.stat().st_size for f in _model_files(bundle, m.files)),
        throughput_per_s=len(timings["end_to_end"]) / elapsed, runs=len(timings["end_to_end"]),
        frame_size=tuple(config.frame_size), machine=machine(), layers=layers, layers_note=note, providers=providers,
        thermal={"before": heat, "after": after} if heat or after else None, energy=energy,
        device_profile=device_profile.name if device_profile else None,
        latency_budget_ms=device_profile.latency_budget_ms if device_profile else None,
        within_budget=stages["end_to_end"].p90_ms <= device_profile.latency_budget_ms if device_profile else None,
        end_to_end_ms=[t / 1e6 for t in timings["end_to_end"]])


def _model_files(bundle: Path, files: dict[str, str]) -> list[Path]:
    """The model file and its companions (OpenVINO's .bin next to the .xml)."""
    paths = [bundle / name for name in files.values()]
    model = bundle / files["model"]
    if model.suffix == ".xml" and model.with_suffix(".bin").is_file() and model.with_suffix(".bin") not in paths:
        paths.append(model.with_suffix(".bin"))
    return [p for p in paths if p.is_file()]


def to_markdown(report: ProfileReport) -> str:
    """The report as Markdown: a header line, the stage table, the slowest layers."""
    r, mc = report, report.machine
    lines = [f"**{Path(r.bundle).name}** — {r.target} {r.precision} on {r.backend} ({r.device}), "
             f"threads {r.threads}; {mc['cpu']} ({mc['cores']} cores)",
             "", f"load {r.load_ms:.1f} ms · peak RSS {r.peak_rss_mb:.0f} MB · model {r.model_bytes / 1e6:.2f} MB · "
             f"{r.runs} runs · {r.throughput_per_s:.0f} predictions/s · frame {r.frame_size[0]}×{r.frame_size[1]}"
             + (f" · device profile {r.device_profile}: p90 {'within' if r.within_budget else 'OVER'} "
                f"the {r.latency_budget_ms:g} ms budget" if r.device_profile else "")
             + (f" · measured on {r.remote['url']} ({mc['os']}, {mc['arch']}, edgemm {r.remote['edgemm_version']})"
                if r.remote else ""),
             "", "| stage | p50 ms | p90 ms | p99 ms | mean ms | std ms |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {s.p50_ms:.3f} | {s.p90_ms:.3f} | {s.p99_ms:.3f} | {s.mean_ms:.3f} | {s.std_ms:.3f} |"
              for name, s in r.stages.items()]
    heat = thermal_summary((r.thermal or {}).get("before"), (r.thermal or {}).get("after"))
    if heat:
        lines += ["", f"Device: {heat}"]
    if r.energy:
        lines += ["", f"Energy: {energy_line(r.energy)}"]
    if r.providers:
        lines += ["", "Nodes run by: " + ", ".join(f"{p} {n}" for p, n in r.providers.items())]
    if r.layers:
        lines += ["", f"Slowest layers ({r.layers_note}):", "", "| layer | op | mean ms | share |", "|---|---|---:|---:|"]
        lines += [f"| {row['name'][-60:]} | {row['op']} | {row['mean_ms']:.4f} | {100 * row['share']:.1f} % |"
                  for row in r.layers]
    elif r.layers_note:
        lines += ["", f"Per-layer times: {r.layers_note}"]
    return "\n".join(lines)


def plot(report: ProfileReport, out: str | Path) -> Path:
    """A PNG: the end-to-end latency histogram with its percentiles, and p50/p90/p99 per stage."""
    from edgemm.plotting import pyplot, save

    plt = pyplot()

    fig, (hist, bars) = plt.subplots(1, 2, figsize=(11, 4))
    e2e = report.stages["end_to_end"]
    hist.hist(report.end_to_end_ms, bins=40, color="#4c72b0")
    for key, style in (("p50_ms", "-"), ("p90_ms", "--"), ("p99_ms", ":")):
        hist.axvline(getattr(e2e, key), color="k", linestyle=style, label=f"{key[:3]} {getattr(e2e, key):.2f} ms")
    hist.set_xlabel("end-to-end ms")
    hist.set_ylabel("predictions")
    hist.set_title(f"{Path(report.bundle).name}: {report.target} {report.precision} on {report.backend}")
    hist.legend()
    names = list(report.stages)
    x = np.arange(len(names))
    for i, key in enumerate(("p50_ms", "p90_ms", "p99_ms")):
        bars.bar(x + (i - 1) * 0.27, [getattr(report.stages[n], key) for n in names], width=0.27, label=key[:3])
    bars.set_xticks(x, names)
    bars.set_ylabel("ms")
    bars.set_title(f"per stage ({report.runs} runs)")
    bars.legend()
    return save(fig, out, dpi=100)
