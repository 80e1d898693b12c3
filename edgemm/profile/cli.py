"""``edgemm profile`` and ``edgemm devices`` (torch-free), and ``--device`` for the other commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def device_profile(value: str | None):
    """The ``DeviceProfile`` named by ``--device`` (a shipped name or a YAML path), or None."""
    if value is None:
        return None
    from edgemm.devices import load_profile

    return load_profile(value)


def runtime_kwargs(dev, bundle: Path, backend: str | None, provider: str | None, threads: int | None) -> dict:
    """``Session`` arguments from the command line, completed by the device profile (if any)."""
    if dev is None:
        return {"backend": backend, "device": provider, "threads": threads, "options": None}
    from edgemm.runtime.manifest import read_manifest

    return dev.session_kwargs(read_manifest(bundle).target, backend, provider, threads)


def add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="per-stage and per-layer latency, load time and memory of a bundle",
                       description="Time each stage of a live prediction (preprocess, inference, postprocess, "
                                   "end to end) after a warm-up, and list the slowest layers from the backend's profiler.")
    p.add_argument("bundle", type=Path)
    p.add_argument("--runs", type=int, default=200, help="timed predictions (at least)")
    p.add_argument("--min-time", type=float, default=0.0, help="also keep running for this many seconds")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--layers", type=int, default=10, help="slowest layers to list (0: skip the per-layer pass)")
    p.add_argument("--backend", default=None, help="onnxruntime | openvino | tflite (default: the bundle's own)")
    p.add_argument("--provider", default=None,
                   help="onnxruntime execution provider (cpu, cuda, tensorrt) or OpenVINO device (CPU, GPU, NPU)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frame-size", default=None, metavar="WxH", help="camera frame fed to preprocessing (default 640x480)")
    p.add_argument("--device", default=None, metavar="PROFILE",
                   help="device profile (name or YAML): its backend, provider, threads, options and frame size")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="latency histogram + per-stage bars")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    p.set_defaults(func=cmd_profile)


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--frame-size: expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--frame-size: width and height must be positive, got {text!r}")
    return w, h


def cmd_profile(a: argparse.Namespace) -> int:
    from edgemm.profile import ProfileConfig, profile, to_markdown
    from edgemm.profile.latency import plot

    dev = device_profile(a.device)
    size = _frame_size(a.frame_size) if a.frame_size else (dev.input_size if dev else (640, 480))
    kw = runtime_kwargs(dev, a.bundle, a.backend, a.provider, a.threads)
    config = ProfileConfig(runs=a.runs, min_time=a.min_time, warmup=a.warmup, layers=a.layers, frame_size=size,
                           backend=kw["backend"], device=kw["device"], threads=kw["threads"],
                           options=kw["options"] or {})
    report = profile(a.bundle, config, device_profile=dev)
    if a.plot:
        plot(report, a.plot)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report.to_dict(), indent=2))
    print(json.dumps(report.to_dict()) if a.json else to_markdown(report))
    return 0


def add_devices(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list the shipped device profiles, or show / validate one",
                       description="Without NAME: one line per shipped profile. With NAME (or a path to your own "
                                   "YAML): the full profile, validated.")
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)


def cmd_devices(a: argparse.Namespace) -> int:
    import yaml

    from edgemm.devices import list_profiles, load_profile

    if a.name is None:
        profiles = list_profiles()
        if a.json:
            print(json.dumps([p.to_dict() for p in profiles]))
            return 0
        width = max(len(p.name) for p in profiles)
        for p in profiles:
            print(f"{p.name:<{width}}  {p.target:<8} {p.precision:<5} {p.backend + '/' + p.device:<21} "
                  f"budget {p.latency_budget_ms:g} ms")
        return 0
    prof = load_profile(a.name)
    d = prof.to_dict()
    print(json.dumps(d) if a.json else yaml.safe_dump(d, sort_keys=False, width=100).rstrip())
    return 0


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="export, evaluate and profile every target × precision of a checkpoint",
                       description="One table: size, accuracy on the whole split, latency percentiles, speed-up "
                                   "vs PyTorch fp32 eager and parity, per target and precision.")
    p.add_argument("checkpoint", nargs="?", type=Path, default=None,
                   help="checkpoint or run directory (default: the latest `edgemm compress` output)")
    p.add_argument("--targets", default="onnx,openvino,tflite")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--data", default=None, help="evaluation data (default: the checkpoint's)")
    p.add_argument("--split", default="test")
    p.add_argument("--runs", type=int, default=100, help="timed predictions per format")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="bundles, bench.json and plot (default: <run>/bench)")
    p.add_argument("--no-reuse", action="store_true", help="re-export even when a bundle of this checkpoint exists")
    p.add_argument("--device", default=None, metavar="PROFILE",
                   help="device profile: its threads everywhere, its backend, device and options for the formats it runs")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                   help="accuracy-vs-latency plot (default: <out>/bench.png)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_bench)


def cmd_bench(a: argparse.Namespace) -> int:
    import sys

    from edgemm.profile.bench import BenchConfig, bench, plot, to_markdown

    split = (lambda s: tuple(v.strip() for v in s.split(",") if v.strip()))
    config = BenchConfig(targets=split(a.targets), precisions=split(a.precisions), data=a.data, split=a.split,
                         runs=a.runs, threads=a.threads, out=a.out, reuse=not a.no_reuse,
                         device_profile=device_profile(a.device))
    report = bench(a.checkpoint, config, log=lambda s: print(s, file=sys.stderr))
    out = Path(report.rows[0].bundle).parent / "bench" if a.out is None else a.out
    plot(report, a.plot or out / "bench.png")
    print(json.dumps(report.to_dict()) if a.json else to_markdown(report))
    return 0
