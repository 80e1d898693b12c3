"""``edgemm export``, ``run``, ``profile``, ``bench`` and ``devices``: from a checkpoint to a device.

``run``, ``profile`` and ``devices`` are torch-free; ``export`` and ``bench`` import torch when they run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgemm.cli._common import (
    PROVIDER_HELP,
    add_device_profile,
    add_event_options,
    add_remote,
    add_trust,
    emit_json,
    event_config,
    finite_float,
    next_steps,
    non_negative_float,
    positive_float,
    positive_int,
    remote_of,
    threshold_arg,
)
from edgemm.errors import UsageError


def _add_export(sub: argparse._SubParsersAction) -> None:
    from edgemm.vocab import PrecisionChoice, Target

    p = sub.add_parser("export", help="export a checkpoint to an ONNX / OpenVINO / TFLite bundle, verified",
                       description="Export a checkpoint as a self-describing bundle and verify it against PyTorch.")
    p.add_argument("checkpoint", nargs="?", type=Path, default=None,
                   help="checkpoint or run directory (default: the latest `edgemm compress` output, runs/compress)")
    p.add_argument("--target", default=None, choices=[t.value for t in Target],
                   help="(default: the --device-profile's)")
    p.add_argument("--precision", default=None, choices=[x.value for x in PrecisionChoice],
                   help="fp32, fp16, int8, or auto: the fastest that verifies, measured here on the bundle's backend "
                        "(or the --device-profile's); default: the profile's, else int8 for a quantized `edgemm "
                        "compress` run (it carries the int8 program compress trained), else fp32")
    add_device_profile(p, "default target and precision, and the backend, provider, threads and options `auto` "
                          "measures with; recorded in the manifest")
    p.add_argument("--calib-data", default=None, help="int8 calibration data (default: the training data)")
    p.add_argument("--calib-samples", type=positive_int, default=256)
    p.add_argument("--verify-samples", type=positive_int, default=256)
    p.add_argument("--out", type=Path, default=None,
                   help="bundle directory (default: <run>/<model>-<target>-<precision>.edgemm)")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--explain", action="store_true",
                   help="int8: measure each layer's int8 error, print the worst by branch (image, audio, fusion, "
                        "head) and record them in the manifest (a failed int8 verification does this too)")
    p.add_argument("--max-drop", type=non_negative_float, default=None, metavar="PTS",
                   help="int8: the accuracy drop allowed, in points (default 1); if verification fails, keep the "
                        "layers int8 hurts most in float until it passes (the manifest lists them and why)")
    _add_frontend(p)
    p.add_argument("--json", action="store_true", help="print the manifest")
    add_trust(p)
    p.set_defaults(func=_cmd_export)


def _add_frontend(p: argparse.ArgumentParser) -> None:
    from edgemm.vocab import FrontendPlace

    p.add_argument("--frontend", default=None, choices=[f.value for f in FrontendPlace],
                   help="where the audio log-mel is computed: in the exported graph (the model takes the waveform) "
                        "or by edgemm's runtime (an FFT, each frame once per hop in live runs; the model takes the "
                        "log-mel); default: the device profile's, else graph")


def _cmd_export(a: argparse.Namespace) -> int:
    from edgemm.deploy import export
    from edgemm.export import VerificationFailed

    log = (lambda s: print(s, file=sys.stderr)) if a.json else print
    try:
        manifest = export(a.checkpoint, target=a.target, precision=a.precision, device_profile=a.device_profile,
                          out=a.out, calib_data=a.calib_data, verify=not a.no_verify,
                          calib_samples=a.calib_samples, verify_samples=a.verify_samples, explain=a.explain,
                          max_drop=a.max_drop, frontend=a.frontend, log=log)
    except VerificationFailed as e:
        print(f"edgemm export: {e}\n(the failed bundle is kept at {e.bundle}, marked failed in its manifest)",
              file=sys.stderr)
        return 3
    if a.json:
        emit_json(a, manifest.to_dict())
        return 0
    next_steps(f"edgemm run {manifest.location} --camera 0 --mic default   # or --video FILE",
               f"edgemm profile {manifest.location}")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    from edgemm.runtime.pipeline import RunConfig

    d = RunConfig()
    p = sub.add_parser("run", help="run a bundle on a live camera + microphone or a video file (torch-free)",
                       description="Classify live camera + microphone input, or a video file, with an exported bundle.")
    p.add_argument("bundle", type=Path)
    src = p.add_argument_group("input")
    src.add_argument("--camera", default=None,
                     help="camera index, /dev/videoN, URL (http/udp/rtsp) or GStreamer pipeline")
    src.add_argument("--mic", default=None, help="microphone index or name substring, or 'default'")
    src.add_argument("--video", type=Path, default=None,
                     help="video file (with its audio track unless --mic/--audio-file)")
    src.add_argument("--audio-file", type=Path, default=None, help="audio for --video from a separate file")
    src.add_argument("--realtime", action="store_true", help="pace --video in real time instead of as fast as possible")
    src.add_argument("--no-audio", action="store_true", help="ignore the video's audio track")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON object per inference on stdout")
    out.add_argument("--quiet", action="store_true", help="no per-inference output (summary only)")
    out.add_argument("--show", action="store_true", help="OpenCV window with the annotated frame")
    out.add_argument("--save", type=Path, default=None, help="write the annotated stream + audio (H.264/AAC) to a file")
    out.add_argument("--preview", default=None, metavar="HOST:PORT",
                     help="serve a live web preview (host defaults to 127.0.0.1)")
    out.add_argument("--events", action="store_true",
                     help="print each class's onset/offset events as they end (JSON lines with --json): a score "
                          "reaching --event-on starts one, falling below --event-off ends it")
    add_event_options(out)
    out.add_argument("--telemetry-every", type=positive_float, default=None, metavar="S",
                     help='print the run\'s counters and latency as a {"telemetry": ...} JSON line every S seconds')
    out.add_argument("--metrics", default=None, metavar="HOST:PORT",
                     help="serve the run's live counters and latency at /metrics in the Prometheus text format "
                          "(host defaults to 127.0.0.1)")
    out.add_argument("--summary-json", type=Path, default=None, help="also write the run summary as JSON")
    r = p.add_argument_group("inference")
    r.add_argument("--smooth", type=int, default=d.smooth, metavar="K", help="smooth over K results (1 = off)")
    r.add_argument("--smooth-mode", default=d.smooth_mode.value, help="ema | majority")
    r.add_argument("--threshold", type=threshold_arg, default=d.threshold,
                   help="no label below this score; auto: the bundle's calibrated operating point")
    r.add_argument("--hop", type=finite_float, default=d.hop, help="seconds between results when only audio is live")
    r.add_argument("--no-liveness", action="store_true",
                   help="never treat a silent mic / covered camera as absent")
    r.add_argument("--max-results", type=int, default=None, help="stop after N results")
    r.add_argument("--batch", type=positive_int, default=d.batch, metavar="N",
                   help="video files read as fast as possible: predict up to N waiting frames per model call "
                        "(live input: always the newest frame alone)")
    r.add_argument("--duration", type=finite_float, default=None, help="stop after this many seconds")
    r.add_argument("--backend", default=None, help="onnxruntime | openvino | tflite (default: the bundle's own)")
    r.add_argument("--provider", default=None, help=PROVIDER_HELP)
    r.add_argument("--threads", type=positive_int, default=None, help="inference threads (default: all cores but one, "
                                                              "which is left to capture and decoding)")
    add_device_profile(r, "backend, provider, threads and options, and its camera and microphone when no input "
                          "is given")
    p.set_defaults(func=_cmd_run, json_streams=True)


def _cmd_run(a: argparse.Namespace) -> int:
    import json

    from edgemm.deploy import live_inputs, session_options
    from edgemm.devices import as_profile
    from edgemm.runtime import load
    from edgemm.runtime.pipeline import RunConfig
    from edgemm.runtime.run import live_threads, run
    from edgemm.runtime.smoothing import auto_threshold

    dev = as_profile(a.device_profile)
    inputs = live_inputs(dev, camera=a.camera, mic=a.mic, video=a.video, audio_file=a.audio_file,
                         realtime=a.realtime, no_audio=a.no_audio)
    kw = session_options(a.bundle, dev, backend=a.backend, provider=a.provider, threads=a.threads)
    session = load(a.bundle, **{**kw, "threads": kw["threads"] or live_threads()})
    threshold = auto_threshold(session.manifest.calibration, a.bundle) if a.threshold == "auto" else a.threshold
    config = RunConfig(smooth=a.smooth, smooth_mode=a.smooth_mode, threshold=threshold, hop=a.hop,
                       liveness=not a.no_liveness, max_results=a.max_results, max_seconds=a.duration,
                       batch=a.batch)
    summary = run(session, inputs, config, as_json=a.json, show=a.show, save=a.save, preview=a.preview,
                  metrics=a.metrics, telemetry_every=a.telemetry_every, quiet=a.quiet,
                  events=event_config(a) if a.events else None)
    if a.summary_json is not None:
        from edgemm.atomic import atomic_write_text, require_parent

        atomic_write_text(require_parent(a.summary_json, "--summary-json"), json.dumps(summary.to_json(), indent=2))
    return 0


def _add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="per-stage and per-layer latency, load time and memory of a bundle",
                       description="Time each stage of a live prediction (preprocess, inference, postprocess, "
                                   "end to end) after a warm-up, and list the slowest layers from the backend's profiler. "
                                   "Given several bundles: time them against each other in interleaved rounds "
                                   "(--rounds), with each one's time relative to the first, paired per round.")
    p.add_argument("bundle", type=Path, nargs="+")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="several bundles: rounds of every bundle in turn (--runs each per round)")
    p.add_argument("--stage", choices=("inference", "end_to_end"), default="inference",
                   help="several bundles: the stage whose p50 is compared")
    p.add_argument("--runs", type=positive_int, default=200, help="timed predictions (at least)")
    p.add_argument("--min-time", type=finite_float, default=0.0, help="also keep running for this many seconds")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--layers", type=int, default=10, help="slowest layers to list (0: skip the per-layer pass)")
    p.add_argument("--no-energy", action="store_true",
                   help="skip the energy measurement (with a readable power sensor: 1 s idle, then >= 5 s of runs)")
    p.add_argument("--backend", default=None, help="onnxruntime | openvino | tflite (default: the bundle's own)")
    p.add_argument("--provider", default=None, help=PROVIDER_HELP)
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--frame-size", default=None, metavar="WxH",
                   help="camera frame fed to preprocessing (default 640x480)")
    add_device_profile(p, "its backend, provider, threads, options and frame size, and the latency budget checked")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="latency histogram + per-stage bars")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    add_remote(p)
    p.set_defaults(func=_cmd_profile)


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--frame-size: expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--frame-size: width and height must be positive, got {text!r}")
    return w, h


def _remote_args(a: argparse.Namespace) -> list[str]:
    """The ``edgemm profile`` options to repeat on the device."""
    out = ["--runs", str(a.runs), "--min-time", str(a.min_time), "--warmup", str(a.warmup), "--layers", str(a.layers)]
    for flag, value in (("--backend", a.backend), ("--provider", a.provider), ("--threads", a.threads),
                        ("--frame-size", a.frame_size)):
        if value is not None:
            out += [flag, str(value)]
    if getattr(a, "no_energy", False):  # measured on the device, by the device's sensors
        out.append("--no-energy")
    if a.device_profile is not None:
        from edgemm.devices import list_profiles

        shipped = [p.name for p in list_profiles()]
        if a.device_profile not in shipped:
            raise UsageError(f"--device-profile with --remote: give a shipped profile name ({', '.join(shipped)}); "
                             f"{a.device_profile!r} is not one, and a YAML file here is not on the device")
        out += ["--device-profile", a.device_profile]
    return out


def _cmd_profile(a: argparse.Namespace) -> int:
    from edgemm.deploy import profile_config
    from edgemm.devices import as_profile
    from edgemm.profile import profile

    if a.out:
        from edgemm.atomic import require_parent

        require_parent(a.out, "--out")  # before the measurement, not after it
    if len(a.bundle) > 1:
        return _cmd_compare(a)
    a.bundle = a.bundle[0]
    if a.remote:
        from edgemm.devices.remote import profile_remote

        if a.plot:
            raise UsageError("--plot draws the raw timings, which stay on the device with --remote; use --json")
        from edgemm.profile.latency import ProfileReport

        report = ProfileReport.from_dict(profile_remote(remote_of(a), a.bundle, _remote_args(a),
                                                        timeout=a.remote_timeout))
        return _show_profile(a, report)
    dev = as_profile(a.device_profile)
    config = profile_config(a.bundle, dev, backend=a.backend, provider=a.provider, threads=a.threads,
                            frame_size=_frame_size(a.frame_size) if a.frame_size else None,
                            runs=a.runs, min_time=a.min_time, warmup=a.warmup, layers=a.layers,
                            energy=not a.no_energy)
    return _show_profile(a, profile(a.bundle, config, device_profile=dev))


def _cmd_compare(a: argparse.Namespace) -> int:
    """``edgemm profile A B …``: the bundles timed against each other (``edgemm.profile.compare``)."""
    from edgemm.deploy import profile_config
    from edgemm.profile.compare import CompareConfig, Comparison, compare, to_markdown

    if a.plot:
        raise UsageError("--plot draws one bundle's latency histogram; compare bundles without it")
    if a.remote:
        from edgemm.devices.remote import compare_remote

        args = [*_remote_args(a), "--rounds", str(a.rounds), "--stage", a.stage]
        report = Comparison.from_dict(compare_remote(remote_of(a), a.bundle, args, timeout=a.remote_timeout))
    else:
        config = profile_config(a.bundle[0], a.device_profile, backend=a.backend, provider=a.provider,
                                threads=a.threads, frame_size=_frame_size(a.frame_size) if a.frame_size else None,
                                runs=a.runs, warmup=a.warmup, layers=0)
        report = compare(a.bundle, CompareConfig(rounds=a.rounds, stage=a.stage, profile=config))
    return _emit(a, report, to_markdown)


def _show_profile(a: argparse.Namespace, report) -> int:
    from edgemm.profile import to_markdown
    from edgemm.profile.latency import plot

    if a.plot:
        plot(report, a.plot)
    return _emit(a, report, to_markdown)


def _emit(a: argparse.Namespace, report, markdown) -> int:
    """``--out`` (the JSON to a file), then ``--json`` or the Markdown on stdout."""
    import json

    from edgemm.atomic import atomic_write_text

    if a.out:
        atomic_write_text(a.out, json.dumps(report.to_dict(), indent=2))
    if a.json:
        emit_json(a, report.to_dict())
    else:
        print(markdown(report))
    return 0


def _add_devices(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list the shipped device profiles, or show / validate one",
                       description="Without NAME: one line per shipped profile. With NAME (or a path to your own "
                                   "YAML): the full profile, validated.")
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_devices)


def _cmd_devices(a: argparse.Namespace) -> int:
    import yaml

    from edgemm.devices import list_profiles, load_profile

    if a.name is None:
        profiles = list_profiles()
        if a.json:
            emit_json(a, [p.to_dict() for p in profiles])
            return 0
        width = max(len(p.name) for p in profiles)
        for p in profiles:
            print(f"{p.name:<{width}}  {p.target:<8} {p.precision:<5} {p.backend + '/' + p.provider:<21} "
                  f"budget {p.latency_budget_ms:g} ms")
        return 0
    d = load_profile(a.name).to_dict()
    if a.json:
        emit_json(a, d)
    else:
        print(yaml.safe_dump(d, sort_keys=False, width=100).rstrip())
    return 0


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="what this machine can do: backends, OpenCV, cameras, mics, sensors",
                       description="One line per backend and its providers or devices, the OpenCV build (windows, "
                                   "GStreamer), cameras, microphones, thermal zones, power sensors and torch, with "
                                   "the fix for what is missing. With --device-profile: exit 1 when any of that "
                                   "profile's needs is missing.")
    add_device_profile(p, "also check what this profile needs (its backend, provider or device, camera, microphone)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(a: argparse.Namespace) -> int:
    from edgemm.deploy.doctor import doctor, lines
    from edgemm.devices import as_profile

    report = doctor(as_profile(a.device_profile))
    if a.json:
        emit_json(a, report)
    else:
        print("\n".join(lines(report)))
    return 0 if report["ok"] else 1


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="export, evaluate and profile every target × precision of a checkpoint",
                       description="One table: size, accuracy on the whole split, latency percentiles, speed-up "
                                   "vs PyTorch fp32 eager and parity, per target and precision.")
    p.add_argument("checkpoint", nargs="?", type=Path, default=None,
                   help="checkpoint or run directory (default: the latest `edgemm compress` output)")
    p.add_argument("--targets", default="onnx,openvino,tflite")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--data", default=None, help="evaluation data (default: the checkpoint's)")
    p.add_argument("--split", default="test")
    p.add_argument("--runs", type=positive_int, default=100, help="timed predictions per format")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--out", type=Path, default=None,
                   help="bundles, bench.json, the bench.jsonl history and the plot (default: <run>/bench)")
    p.add_argument("--no-reuse", action="store_true", help="re-export even when a bundle of this checkpoint exists")
    _add_frontend(p)
    add_device_profile(p, "its threads everywhere, its backend, provider and options for the formats it runs")
    p.add_argument("--fail-under", action="append", default=[], metavar="METRIC=VALUE",
                   help="exit 4 when a format's METRIC (accuracy, accuracy_image_only, accuracy_audio_only, "
                        "speedup, inferences_per_joule) is below VALUE, or not measured, or when a format failed "
                        "to export or verify; repeatable")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                   help="accuracy-vs-latency plot (default: <out>/bench.png)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_remote(p)
    add_trust(p)
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(a: argparse.Namespace) -> int:
    from edgemm.deploy.bench import BenchConfig, below_floors, bench, parse_floor, plot, to_markdown
    from edgemm.devices import as_profile

    floors = [parse_floor(f) for f in a.fail_under]

    def split(s: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in s.split(",") if v.strip())

    config = BenchConfig(targets=split(a.targets), precisions=split(a.precisions), data=a.data, split=a.split,
                         runs=a.runs, threads=a.threads, out=a.out, reuse=not a.no_reuse,
                         device_profile=as_profile(a.device_profile), remote=remote_of(a),
                         remote_timeout=a.remote_timeout, frontend=a.frontend)
    report = bench(a.checkpoint, config, log=lambda s: print(s, file=sys.stderr))
    plot(report, a.plot or report.out / "bench.png")
    if a.json:
        emit_json(a, report.to_dict())
    else:
        print(to_markdown(report))
    failures = below_floors(report, floors)
    for f in failures:
        print(f"edgemm bench: {f}", file=sys.stderr)
    return 4 if failures else 0


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="pre-flight: would this model survive export, pruning, int8 and every target?",
                       description="Build the model, run it, then try torch.export, DepGraph pruning, PT2E int8 and "
                                   "ONNX / OpenVINO / TFLite conversion on a tiny input; one row per stage.")
    p.add_argument("model", help="registered name or PATH.py:FUNCTION / package.module:FUNCTION")
    p.add_argument("--num-classes", type=positive_int, default=10)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_check)


def _cmd_check(a: argparse.Namespace) -> int:
    from edgemm.deploy.check import check, to_markdown

    report = check(a.model, num_classes=a.num_classes, log=lambda s: print(s, file=sys.stderr))
    if a.json:
        emit_json(a, report.to_dict())
    else:
        print(to_markdown(report))
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    _add_check(sub)
    _add_export(sub)
    _add_run(sub)
    _add_profile(sub)
    _add_bench(sub)
    _add_devices(sub)
    _add_doctor(sub)
