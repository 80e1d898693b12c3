"""``edgemm bench``: every target × precision of one checkpoint, exported, evaluated and profiled.

Each combination is exported (or an earlier bundle of the same checkpoint is reused), evaluated on
the whole split through the torch-free runtime, and profiled like ``edgemm profile``. PyTorch fp32
eager on the same single-sample input is the speed reference. A combination that fails to export
is a row with the reason; one that exports but fails verification is measured and marked.
Every run is also appended to ``bench.jsonl`` beside ``bench.json``, so runs accumulate into a history.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgemm.atomic import atomic_write_text
from edgemm.config import parse_enum
from edgemm.deploy.attempt import Attempt, try_export
from edgemm.deploy.workflow import profile_config, session_options
from edgemm.profile.latency import profile
from edgemm.profile.stats import LatencyStats, machine
from edgemm.vocab import BenchStatus, FrontendPlace, Precision, Target, VerifyStatus

TARGETS = tuple(t.value for t in Target)
PRECISIONS = tuple(p.value for p in Precision)


@dataclass(frozen=True)
class BenchConfig:
    """What to bench.

    Attributes:
        targets: Bundle targets.
        precisions: Precisions of each target.
        data: Evaluation data (default: the checkpoint's own).
        split: The split evaluated, whole.
        runs: Timed predictions per bundle (and for PyTorch).
        threads: Threads for every runtime and for PyTorch (None: each one's default).
        out: Directory for the bundles, ``bench.json`` and the plot (default: next to the checkpoint).
        reuse: Reuse a bundle in ``out`` exported from the same checkpoint (same sha256).
        device_profile: A ``DeviceProfile``: its threads, and its backend, device and options for the
            targets its backend runs (``DeviceProfile.session_kwargs``).
        remote: An ``edgemm.devices.remote.Remote``: time every bundle on that device over SSH
            (accuracy is still evaluated here: the same bundle gives the same answers).
        remote_timeout: Seconds allowed for each remote step.
        frontend: Where the bundles compute the log-mel (``edgemm export --frontend``; None: the
            device profile's, else in the graph).
    """

    targets: tuple[str, ...] = TARGETS
    precisions: tuple[str, ...] = PRECISIONS
    data: str | None = None
    split: str = "test"
    runs: int = 100
    threads: int | None = None
    out: Path | None = None
    reuse: bool = True
    device_profile: Any = None
    remote: Any = None
    remote_timeout: float = 600.0
    frontend: FrontendPlace | None = None

    def __post_init__(self) -> None:
        if self.frontend is None:
            dev = self.device_profile
            object.__setattr__(self, "frontend", FrontendPlace(dev.frontend) if dev else FrontendPlace.GRAPH)
        object.__setattr__(self, "frontend", parse_enum(FrontendPlace, self.frontend, "--frontend"))
        for name, values, valid in (("--targets", self.targets, TARGETS), ("--precisions", self.precisions, PRECISIONS)):
            bad = [v for v in values if v not in valid]
            if bad or not values:
                raise ValueError(f"{name}: {bad or 'nothing'} given; choose from {list(valid)}")
        if self.runs < 1:
            raise ValueError(f"--runs: expected a positive number of timed predictions, got {self.runs}")


@dataclass
class BenchRow:
    """One format (or PyTorch); ``status`` says whether it exported and verified (see ``reason``)."""

    target: str
    precision: str
    status: BenchStatus
    reason: str = ""
    bundle: str | None = None
    size_mb: float | None = None
    accuracy: float | None = None
    accuracy_image_only: float | None = None
    accuracy_audio_only: float | None = None
    n: int | None = None
    inference: dict[str, float] | None = None
    end_to_end: dict[str, float] | None = None
    speedup: float | None = None  # PyTorch fp32 eager p50 / this p50, inference only (None: timed elsewhere)
    parity: str = ""
    backend: str = ""
    within_budget: bool | None = None  # with a device profile: p90 end to end within its budget
    energy: dict[str, Any] | None = None  # joules per inference, or why not (``edgemm.profile.energy``)
    seconds: float = 0.0

    @property
    def inferences_per_joule(self) -> float | None:
        """1 / net joules per inference where energy was measured (higher is better, as for the other floors)."""
        energy = self.energy or {}
        joules = energy.get("joules_per_inference") if energy.get("status") == "measured" else None
        return 1.0 / joules if joules is not None and joules > 0 else None


@dataclass
class BenchReport:
    """The rows of one run; ``out`` is the directory holding its bundles, ``bench.json`` and ``bench.jsonl``."""

    checkpoint: str
    data: str
    split: str
    rows: list[BenchRow]
    out: Path = Path(".")
    machine: dict[str, Any] = field(default_factory=machine)
    frontend: str = FrontendPlace.GRAPH.value

    def to_dict(self) -> dict[str, Any]:
        rows = [{**asdict(r), "status": r.status.value} for r in self.rows]
        return {"checkpoint": self.checkpoint, "data": self.data, "split": self.split, "machine": self.machine,
                "frontend": self.frontend, "rows": rows}


FLOOR_METRICS = ("accuracy", "accuracy_image_only", "accuracy_audio_only", "speedup", "inferences_per_joule")


def parse_floor(text: str) -> tuple[str, float]:
    """``METRIC=VALUE`` of ``--fail-under`` as (metric, value)."""
    metric, _, value = text.partition("=")
    if metric not in FLOOR_METRICS:
        raise ValueError(f"--fail-under: {text!r}: metric must be one of {list(FLOOR_METRICS)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--fail-under: {text!r}: expected METRIC=NUMBER such as accuracy=0.9") from None
    if not math.isfinite(number):  # every comparison with nan is false: the gate could never fail
        raise ValueError(f"--fail-under: {text!r}: the floor must be a finite number")
    return metric, number


def below_floors(report: BenchReport, floors: list[tuple[str, float]]) -> list[str]:
    """One message per exported format that failed, or whose metric is under a floor (PyTorch excluded)."""
    if not floors:
        return []
    out = []
    for r in report.rows[1:]:
        if r.status is not BenchStatus.OK:
            out.append(f"{r.target} {r.precision}: {r.status.value} ({r.reason[:120]})")
            continue
        for metric, value in floors:
            got = getattr(r, metric)
            if got is None:  # a bundle timed on a remote device (PyTorch ran here), or no power sensor
                why = (_no_energy(r.energy) if metric == "inferences_per_joule"
                       else f"timed on {r.backend.split(' on ')[-1]}")
                out.append(f"{r.target} {r.precision}: {metric} not measured ({why})")
            elif got < value:
                out.append(f"{r.target} {r.precision}: {metric} {got:.4f} < {value:g}")
    return out


def _no_energy(energy: dict[str, Any] | None) -> str:
    """Why a row has no inferences per joule."""
    if not energy:
        return "energy not measured (--no-energy)"
    if energy.get("status") == "measured":
        return f"net energy {energy.get('joules_per_inference', 0):.3g} J: not above idle"
    return f"energy unavailable: {energy.get('reason', '')}"


def _torch_row(source, dataset, labels, frame, audio, config: BenchConfig) -> BenchRow:
    import torch

    from edgemm.data.preprocess import preprocess_image
    from edgemm.export.source import torch_runner
    from edgemm.metrics import metrics
    from edgemm.runtime.evaluate import predict_logits

    threads = config.threads or (config.device_profile.threads if config.device_profile else None)
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    r = metrics(*predict_logits(torch_runner(source.model), dataset), labels)
    model = source.model.eval()
    x = (torch.from_numpy(preprocess_image(frame, source.preprocess.image))[None], torch.from_numpy(audio)[None],
         torch.ones(1), torch.ones(1))
    times = []
    with torch.inference_mode():
        for i in range(config.runs + 10):
            a = time.perf_counter_ns()
            model(*x)
            if i >= 10:
                times.append(time.perf_counter_ns() - a)
    size = sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 1e6
    return BenchRow("pytorch", "fp32", BenchStatus.OK, bundle=str(source.checkpoint), size_mb=size, accuracy=r.accuracy,
                    accuracy_image_only=r.accuracy_image_only, accuracy_audio_only=r.accuracy_audio_only, n=r.n,
                    inference=LatencyStats.from_ns(times).to_dict(), speedup=1.0, parity="reference (eager)",
                    backend=f"pytorch {torch.__version__} eager (CPU, threads {torch.get_num_threads()})",
                    seconds=time.perf_counter() - t0)


def export_or_reuse(source, target: str, precision: str, out: Path, *, reuse: bool = True,
                    frontend: FrontendPlace = FrontendPlace.GRAPH, log: Callable[[str], None] = print) -> Attempt:
    """Exports one bundle to ``out/<model>-<target>-<precision>[-runtime-frontend].edgemm``, or reuses
    the one there exported from the same checkpoint (sha256) with the same frontend place."""
    from edgemm.export.bundle import bundle_name
    from edgemm.runtime.manifest import read_manifest

    frontend = FrontendPlace(frontend)
    bundle = out / bundle_name(source.name, target, precision, frontend)
    if reuse and bundle.is_dir():
        m = read_manifest(bundle)
        if m.source.get("sha256") == source.sha256 and m.frontend is frontend:
            log(f"bench: reusing {bundle}")
            return Attempt(bundle, m.verification)
    from edgemm.export.config import ExportConfig

    return try_export(source.checkpoint, ExportConfig(target=target, precision=precision, frontend=frontend), out=bundle,
                      log=log)


def _parity(v: dict) -> str:
    if v.get("status") == VerifyStatus.PASSED:
        return f"passed (top-1 agreement {v.get('top1_agreement', float('nan')):.3f})"
    return f"{v.get('status', 'unknown')}: {v.get('message', '')}".strip()


def bench(checkpoint: str | Path | None, config: BenchConfig | None = None,
          log: Callable[[str], None] = print) -> BenchReport:
    """Runs the bench (see the module docstring); ``out/bench.json`` is written as rows finish."""
    from edgemm.data import open_dataset
    from edgemm.export.source import load_source
    from edgemm.runtime import evaluate_session, load

    config = config or BenchConfig()
    source = load_source(checkpoint)
    out = Path(config.out) if config.out else source.checkpoint.parent / "bench"
    out.mkdir(parents=True, exist_ok=True)
    data = config.data or source.ckpt.get("data") or "default"
    dataset = open_dataset(data, source.preprocess, splits=(config.split,), labels=source.labels).get(config.split)
    log(f"bench: {source.checkpoint} on {data} [{config.split}, n={len(dataset)}]")
    report = BenchReport(str(source.checkpoint), str(data), config.split, [], out=out,
                         frontend=FrontendPlace(config.frontend).value)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(source.preprocess.audio.clip_samples)).astype(np.float32)
    report.rows.append(_torch_row(source, dataset, source.labels, frame, audio, config))
    base = report.rows[0].inference["p50_ms"]
    from edgemm.export.formats import offers

    for target in config.targets:
        for precision in config.precisions:
            if not offers(target, precision):
                continue  # e.g. ExecuTorch has no fp16 program: no row rather than a failure
            t0 = time.perf_counter()
            try:
                tried = export_or_reuse(source, target, precision, out, reuse=config.reuse, frontend=config.frontend,
                                        log=log)
            except Exception as e:  # noqa: BLE001 - any export failure is a row, not a crash
                tried = Attempt(None, error=f"{type(e).__name__}: {e}")
            if tried.bundle is None:
                report.rows.append(BenchRow(target, precision, BenchStatus.EXPORT_FAILED, reason=tried.error,
                                            seconds=time.perf_counter() - t0))
                log(f"bench: {target} {precision}: {tried.status}")
                continue
            bundle, verification = tried.bundle, tried.verification
            dev = config.device_profile
            session = load(bundle, **session_options(bundle, dev, threads=config.threads))
            r = evaluate_session(session, dataset, source.labels)
            p = (_remote_profile(bundle, config) if config.remote else
                 profile(bundle, profile_config(bundle, dev, threads=config.threads, runs=config.runs, warmup=10,
                                                layers=0), device_profile=dev))
            m, parity, verified = session.manifest, _parity(verification), tried.verified
            size = sum((bundle / f).stat().st_size for f in m.files.values()) / 1e6
            report.rows.append(BenchRow(
                target, precision, BenchStatus.OK if verified else BenchStatus.VERIFICATION_FAILED,
                reason="" if verified else parity, bundle=str(bundle), size_mb=size,
                accuracy=r.accuracy, accuracy_image_only=r.accuracy_image_only,
                accuracy_audio_only=r.accuracy_audio_only, n=r.n, inference=p.stages["inference"].to_dict(),
                end_to_end=p.stages["end_to_end"].to_dict(),
                speedup=None if config.remote else base / p.stages["inference"].p50_ms,
                parity=parity, backend=f"{p.backend} ({p.device}, threads {p.threads})"
                + (f" on {config.remote.url}" if config.remote else ""),
                within_budget=p.within_budget, energy=p.energy, seconds=time.perf_counter() - t0))
            atomic_write_text(out / "bench.json", json.dumps(report.to_dict(), indent=2))
    atomic_write_text(out / "bench.json", json.dumps(report.to_dict(), indent=2))
    _append_history(out / "bench.jsonl", report)
    return report


def _remote_profile(bundle: Path, config: BenchConfig):
    """``edgemm profile`` of ``bundle`` on ``config.remote``, as a ``ProfileReport``."""
    from edgemm.devices.remote import profile_remote
    from edgemm.profile.latency import ProfileReport

    args = ["--runs", str(config.runs), "--warmup", "10", "--layers", "0"]
    if config.threads:
        args += ["--threads", str(config.threads)]
    if config.device_profile is not None:
        args += ["--device-profile", config.device_profile.name]
    return ProfileReport.from_dict(profile_remote(config.remote, bundle, args, timeout=config.remote_timeout))


def _append_history(path: Path, report: BenchReport) -> None:
    """Appends the run as one JSON line (a history of runs; a torn last line is the only possible damage)."""
    from edgemm import __version__

    entry = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "edgemm_version": __version__, **report.to_dict()}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def vs_fp32(report: BenchReport, row: BenchRow) -> float | None:
    """The same target's fp32 p50 over this row's (> 1: faster than fp32), if both were timed."""
    base = next((r for r in report.rows if r.target == row.target and r.precision == Precision.FP32.value
                 and r.inference), None)
    return base.inference["p50_ms"] / row.inference["p50_ms"] if base and row.inference else None


WHY_NOT_FASTER = {
    Precision.INT8.value: "int8 pays where its kernels beat the float ones (wide layers); on small layers the "
                          "quantize/dequantize steps and int8 kernels' setup cost more than they save",
    Precision.FP16.value: "fp16 compute pays on GPUs and NPUs; CPUs without fp16 arithmetic convert it back",
}


def not_faster(report: BenchReport) -> list[str]:
    """Why a lower precision was not worth it: one line per verified fp16/int8 row no faster than fp32."""
    lines = []
    for r in report.rows:
        ratio = vs_fp32(report, r) if r.precision != Precision.FP32.value and r.status is BenchStatus.OK else None
        if ratio is not None and ratio <= 1.0:
            lines.append(f"{r.target} {r.precision} runs at {ratio:.2f}× fp32's speed here (p50 "
                         f"{r.inference['p50_ms']:.3f} ms): `--precision auto` keeps the faster one; "
                         + WHY_NOT_FASTER.get(r.precision, ""))
    return lines


def to_markdown(report: BenchReport) -> str:
    mc = report.machine
    n = next((r.n for r in report.rows if r.n), None)
    lines = [f"{report.checkpoint} on {report.data} [{report.split}, n={n}] · {mc['cpu']} ({mc['cores']} cores)", "",
             "| | target | precision | size MB | fused | image-only | audio-only | p50 ms | p90 ms | e2e p50 ms | "
             "speed-up | × vs fp32 | parity |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.rows:
        if r.status is BenchStatus.EXPORT_FAILED:
            lines.append(f"| {r.status.mark} | {r.target} | {r.precision} | | | | | | | | | | export failed: {r.reason[:120]} |")
            continue
        e2e = f"{r.end_to_end['p50_ms']:.3f}" if r.end_to_end else ""
        lines.append(f"| {r.status.mark} | {r.target} | {r.precision} | {r.size_mb:.2f} | {r.accuracy:.3f} | {r.accuracy_image_only:.3f} | "
                     f"{r.accuracy_audio_only:.3f} | {r.inference['p50_ms']:.3f} | {r.inference['p90_ms']:.3f} | {e2e} | "
                     f"{_ratio(r.speedup)} | {_ratio(vs_fp32(report, r))} | {r.parity[:80]} |")
    lines += ["", "✅ exported and verified · ❎ exported, failed verification · ❌ export failed"]
    if report.frontend == FrontendPlace.RUNTIME.value:
        lines.append("- --frontend runtime: p50/p90 are the graphs without the log-mel, which the runtime computes "
                     "(streamed, as live at 30 fps) inside e2e; speed-up sets that graph against PyTorch's whole "
                     "model, frontend included: compare e2e")
    lines += [f"- {line}" for line in not_faster(report)]
    lines += [f"- {line}" for line in _energy_lines(report)]
    return "\n".join(lines)


def _energy_lines(report: BenchReport) -> list[str]:
    """Each format's energy per inference where it was measured, else the one reason it was not."""
    from edgemm.profile.energy import energy_line

    rows = [r for r in report.rows if r.energy]
    measured = [r for r in rows if r.energy.get("status") == "measured"]
    if measured:
        return [f"energy, {r.target} {r.precision}: {energy_line(r.energy)}" for r in measured]
    return [f"energy: {energy_line(rows[0].energy)}"] if rows else []


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}×"


def plot(report: BenchReport, path: str | Path) -> Path:
    """Fused accuracy against p50 inference latency, one point per format."""
    from edgemm.plotting import pyplot, save

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in report.rows:
        if r.inference is None:
            continue
        marker = {"pytorch": "s", "onnx": "o", "openvino": "^", "tflite": "D"}.get(r.target, "o")
        ax.scatter(r.inference["p50_ms"], r.accuracy, s=45, marker=marker, label=f"{r.target} {r.precision}",
                   alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("p50 inference latency, ms (log)")
    ax.set_ylabel(f"fused accuracy ({report.split})")
    ax.set_title("accuracy vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return save(fig, path, dpi=100)
