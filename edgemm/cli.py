"""The ``edgemm`` command. Each subcommand maps onto one public function.

Heavy imports (torch) happen inside the subcommand that needs them, so ``edgemm --help`` and the
runtime commands stay fast and torch-free.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

def _add_train(sub: argparse._SubParsersAction) -> None:
    from edgemm.train.config import TrainConfig
    from edgemm.train.policies import AugmentPolicy
    from edgemm.train.precision import Precision as TrainPrecision

    d = TrainConfig()
    p = sub.add_parser("train", help="train an audio-visual fusion model", description="Train a registered model.")
    p.add_argument("--model", default="av_student", help="registered model name (see `edgemm models`)")
    p.add_argument("--data", default="default", help="'default', a manifest CSV, or a video folder")
    p.add_argument("--data-format", choices=["manifest", "video"], help="force the data format")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: runs/<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--pretrained", nargs="?", const="DEFAULT", default=None, metavar="WEIGHTS",
                   help="start the image encoder from pretrained weights: a torchvision weights name "
                        "(IMAGENET1K_V1; DEFAULT when the flag has no value), resolved from torch hub's local cache, "
                        "or a local state-dict file; or hf:ORG/NAME (or hf:DIR) for a Hugging Face vision backbone, "
                        "resolved from the local hub cache")
    p.add_argument("--audio-encoder", default=None, metavar="NAME",
                   help="replace the model's audio branch, e.g. panns_cnn6|panns_cnn10|panns_cnn14 (AudioSet-pretrained PANNs)")
    p.add_argument("--pretrained-audio", default=None, metavar="WEIGHTS",
                   help="start the audio branch from a local checkpoint (a PANNs Cnn*_16k*.pth for panns_*) "
                        "or hf:ORG/NAME/FILE from the Hugging Face cache")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs of the schedule on a large set")
    p.add_argument("--min-steps", type=int, default=d.min_steps,
                   help="the schedule runs at least this many optimiser steps, so small sets train long enough (0: off)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--modality-dropout", type=float, default=d.modality_dropout)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--augment", default=d.augment, choices=[x.value for x in AugmentPolicy],
                   help="augmentation policy: camera (default; no mirror images), natural (adds them), none")
    p.add_argument("--no-augment", action="store_true", help="same as --augment none")
    p.add_argument("--no-ema", action="store_true", help="validate and save the raw weights, not their moving average")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.num_workers, help="DataLoader workers")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--precision", default=d.precision, choices=[x.value for x in TrainPrecision],
                   help="fp32, bf16 autocast, or auto: bf16 where the device computes it natively "
                        "(AVX512-BF16/AMX CPUs, recent GPUs)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad data entries (counted) instead of failing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    from edgemm.train import TrainConfig, train

    cfg = TrainConfig(
        epochs=a.epochs, min_steps=a.min_steps, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
        label_smoothing=a.label_smoothing, modality_dropout=a.modality_dropout, patience=a.patience,
        augment="none" if a.no_augment else a.augment, ema=not a.no_ema, max_steps=a.max_steps, seed=a.seed, num_workers=a.workers,
        device=a.device, threads=a.threads, precision=a.precision,
    )
    out = a.out or Path("runs") / a.model
    from edgemm.models.pretrained import image_start_kwargs

    model_kwargs = image_start_kwargs(a.pretrained) if a.pretrained else {}
    if a.audio_encoder:
        model_kwargs["audio_encoder"] = a.audio_encoder
    if a.pretrained_audio:
        model_kwargs["audio_encoder_kw"] = {"pretrained": a.pretrained_audio}
    summary = train(a.model, a.data, out=out, config=cfg, resume=a.resume, skip_bad=a.skip_bad,
                    data_format=a.data_format, model_kwargs=model_kwargs)
    if a.json:
        print(json.dumps(summary))
    elif "test" in summary:
        t = summary["test"]
        print(f"{a.model}: best val {summary['best_val_accuracy']:.3f}; test fused {t['accuracy']:.3f}, "
              f"image-only {t['accuracy_image_only']:.3f}, audio-only {t['accuracy_audio_only']:.3f} "
              f"(n={t['n']}); checkpoints in {out}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint or bundle: fused, image-only and audio-only accuracy")
    p.add_argument("checkpoint", type=Path, help="a checkpoint (.pt) or an exported bundle directory")
    p.add_argument("--data", default=None, help="data to evaluate on (default: the data the checkpoint was trained on)")
    p.add_argument("--data-format", choices=["manifest", "video"])
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--skip-bad", action="store_true")
    p.add_argument("--plot", type=Path, default=None, help="write the confusion matrix to this PNG")
    p.add_argument("--device", default="cpu", help="torch device (checkpoints)")
    p.add_argument("--backend", default=None, help="runtime backend for a bundle (default: the bundle's own)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads for a bundle")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_eval)


def _add_export(sub: argparse._SubParsersAction) -> None:
    from edgemm.export.formats import Precision, Target

    p = sub.add_parser("export", help="export a checkpoint to an ONNX / OpenVINO / TFLite bundle, verified",
                       description="Export a checkpoint as a self-describing bundle and verify it against PyTorch.")
    p.add_argument("checkpoint", nargs="?", type=Path, default=None,
                   help="checkpoint or run directory (default: the latest `edgemm compress` output, runs/compress)")
    p.add_argument("--target", default=None, choices=[t.value for t in Target], help="(default: the --device profile's)")
    p.add_argument("--precision", default=None, choices=[x.value for x in Precision] + ["auto"],
                   help="fp32 (default), fp16, int8, or auto: the fastest that verifies, measured here on the "
                        "bundle's backend (or the --device profile's)")
    p.add_argument("--device", default=None, metavar="PROFILE",
                   help="device profile (name or YAML): default target and precision, and the backend, threads "
                        "and options `auto` measures with; recorded in the manifest")
    p.add_argument("--calib-data", default=None, help="int8 calibration data (default: the training data)")
    p.add_argument("--calib-samples", type=int, default=256)
    p.add_argument("--verify-samples", type=int, default=256)
    p.add_argument("--out", type=Path, default=None, help="bundle directory (default: <run>/<model>-<target>-<precision>.edgemm)")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.set_defaults(func=_cmd_export)


def _cmd_export(a: argparse.Namespace) -> int:
    from edgemm.export import VerificationFailed, export

    from edgemm.profile.cli import device_profile

    log = (lambda s: print(s, file=sys.stderr)) if a.json else print
    dev = device_profile(a.device)
    target = a.target or (dev.target if dev else None)
    if target is None:
        raise ValueError("--target is required (onnx, openvino or tflite) unless a --device profile gives it")
    precision = a.precision or (dev.precision if dev else "fp32")
    auto = None
    if dev is not None and precision == "auto" and dev.target == target:
        auto = {"backend": dev.backend, "device": dev.device, "threads": dev.threads, "options": dev.backend_options}
    try:
        manifest = export(a.checkpoint, target=target, precision=precision, out=a.out, calib_data=a.calib_data,
                          verify_output=not a.no_verify, calib_samples=a.calib_samples,
                          verify_samples=a.verify_samples, device=dev.name if dev else None, auto=auto, log=log)
    except VerificationFailed as e:
        print(f"edgemm export: {e}\n(the bundle is kept at {e.bundle}, marked failed in its manifest)", file=sys.stderr)
        return 3
    if a.json:
        print(json.dumps(manifest.to_dict()))
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from edgemm.data import open_dataset
    from edgemm.runtime.evaluate import plot_confusion
    from edgemm.runtime.manifest import is_bundle

    if is_bundle(a.checkpoint):  # an exported bundle, through the torch-free runtime
        from edgemm.runtime import evaluate_session, load

        session = load(a.checkpoint, backend=a.backend, threads=a.threads)
        labels = session.labels
        data = a.data or session.manifest.source.get("data") or "default"
        splits = open_dataset(data, session.preprocess, format=a.data_format, skip_bad=a.skip_bad,
                              splits=(a.split,), labels=labels)
        result = evaluate_session(session, splits.get(a.split), labels)
    else:
        from edgemm.train import evaluate, load_model

        model, ckpt = load_model(a.checkpoint, map_location=a.device)
        data = a.data or ckpt.get("data") or "default"
        splits = open_dataset(data, model.preprocess, format=a.data_format, skip_bad=a.skip_bad,
                              splits=(a.split,), labels=ckpt["labels"])
        result = evaluate(model, splits.get(a.split), ckpt["labels"], device=a.device)
    if a.plot:
        plot_confusion(result, a.plot)
    if a.json:
        print(json.dumps({**result.to_dict(), "split": a.split, "data": str(data), "skipped": len(splits.skipped)}))
    else:
        print(f"{a.checkpoint} on {data} [{a.split}, n={result.n}]")
        print(f"  fused {result.accuracy:.3f}   image-only {result.accuracy_image_only:.3f}   "
              f"audio-only {result.accuracy_audio_only:.3f}")
        if result.accuracy_clip is not None:
            print(f"  clip-level fused {result.accuracy_clip:.3f} (n={result.n_clips} clips; mean of each clip's samples)")
        for label, acc in result.per_class.items():
            print(f"  {label:<24} {acc:.3f}")
    return 0


def _add_compress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="distil, prune and quantise a compact student",
                       description="Distil a student from a teacher, prune it structurally, quantise it to int8.")
    p.add_argument("--teacher", type=Path, default=None, help="teacher checkpoint (default: train the recipe's teacher, cached)")
    p.add_argument("--data", default="default", help="'default', a manifest CSV, or a video folder")
    p.add_argument("--recipe", type=Path, default=None, help="recipe YAML (default: the shipped recipe)")
    p.add_argument("--out", type=Path, default=Path("runs/compress"))
    p.add_argument("--resume", action="store_true", help="reuse finished stages in --out")
    p.add_argument("--no-baseline", action="store_true", help="skip the from-scratch student baseline")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--print-recipe", action="store_true", help="print the recipe that would run and exit")
    p.add_argument("--json", action="store_true", help="print report.json")
    p.set_defaults(func=_cmd_compress)


def _cmd_compress(a: argparse.Namespace) -> int:
    from edgemm.compress.recipe import default_recipe_text, load_recipe

    if a.print_recipe:
        print(default_recipe_text() if a.recipe is None else a.recipe.read_text(), end="")
        load_recipe(a.recipe)  # a user recipe is validated too
        return 0
    from edgemm.compress import compress

    report = compress(out=a.out, data=a.data, teacher=a.teacher, recipe=a.recipe, resume=a.resume,
                      baseline=not a.no_baseline, device=a.device, seed=a.seed)
    if a.json:
        print(json.dumps(report))
    else:
        print((a.out / "report.md").read_text())
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    from edgemm.runtime.pipeline import RunConfig

    d = RunConfig()
    p = sub.add_parser("run", help="run a bundle on a live camera + microphone or a video file (torch-free)",
                       description="Classify live camera + microphone input, or a video file, with an exported bundle.")
    p.add_argument("bundle", type=Path)
    src = p.add_argument_group("input")
    src.add_argument("--camera", default=None, help="camera index, /dev/videoN, URL (http/udp/rtsp) or GStreamer pipeline")
    src.add_argument("--mic", default=None, help="microphone index or name substring, or 'default'")
    src.add_argument("--video", type=Path, default=None, help="video file (with its audio track unless --mic/--audio-file)")
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
    out.add_argument("--summary-json", type=Path, default=None, help="also write the run summary as JSON")
    r = p.add_argument_group("inference")
    r.add_argument("--smooth", type=int, default=d.smooth, metavar="K", help="smooth over K results (1 = off)")
    r.add_argument("--smooth-mode", default=d.smooth_mode.value, help="ema | majority")
    r.add_argument("--threshold", type=float, default=d.threshold, help="no label below this score")
    r.add_argument("--hop", type=float, default=d.hop, help="seconds between results when only audio is live")
    r.add_argument("--no-liveness", action="store_true",
                   help="never treat a silent mic / covered camera as absent")
    r.add_argument("--max-results", type=int, default=None, help="stop after N results")
    r.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    r.add_argument("--backend", default=None, help="onnxruntime | openvino | tflite (default: the bundle's own)")
    r.add_argument("--provider", default=None,
                   help="onnxruntime execution provider (cpu, cuda, tensorrt, openvino) or OpenVINO device (CPU, GPU, NPU, AUTO)")
    r.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores but one, "
                                                              "which is left to capture and decoding)")
    r.add_argument("--device", default=None, metavar="PROFILE",
                   help="device profile (name or YAML): backend, provider, threads and options, and its camera "
                        "and microphone when no input is given")
    p.set_defaults(func=_cmd_run)


def _cmd_run(a: argparse.Namespace) -> int:
    from edgemm.runtime import load
    from edgemm.runtime.pipeline import RunConfig
    from edgemm.runtime.run import Inputs, run

    from edgemm.profile.cli import device_profile, runtime_kwargs

    dev = device_profile(a.device)
    camera, mic, mic_rate = a.camera, a.mic, None
    if dev is not None and camera is None and mic is None and a.video is None:
        camera = str(dev.camera)
        mic = None if dev.audio.device is None else str(dev.audio.device)
    if dev is not None and mic is not None:
        mic_rate = dev.audio.sample_rate
    inputs = Inputs(camera=camera, mic=mic, video=a.video, audio_file=a.audio_file, realtime=a.realtime,
                    no_audio=a.no_audio, mic_rate=mic_rate)
    config = RunConfig(smooth=a.smooth, smooth_mode=a.smooth_mode, threshold=a.threshold, hop=a.hop,
                       liveness=not a.no_liveness, max_results=a.max_results, max_seconds=a.duration)
    from edgemm.runtime.run import live_threads

    kw = runtime_kwargs(dev, a.bundle, a.backend, a.provider, a.threads)
    session = load(a.bundle, **{**kw, "threads": kw["threads"] or live_threads()})
    summary = run(session, inputs, config, as_json=a.json, show=a.show, save=a.save, preview=a.preview, quiet=a.quiet)
    if a.summary_json is not None:
        a.summary_json.write_text(json.dumps(summary.to_json(), indent=2))
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make the embedded default data set, or check a data set")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    m = dsub.add_parser("make", help="generate the default set (manifest CSV; --video: a video folder)")
    m.add_argument("--out", type=Path, default=None, help="parent directory (default: the user cache)")
    m.add_argument("--samples-per-class", type=int, default=None)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--video", action="store_true", help="write H.264+AAC clips in the video-folder format")
    m.add_argument("--clips-per-class", type=int, default=4)
    m.set_defaults(func=_cmd_data_make)
    c = dsub.add_parser("check", help="validate a manifest CSV or video folder and report bad entries")
    c.add_argument("path")
    c.add_argument("--data-format", choices=["manifest", "video"])
    c.set_defaults(func=_cmd_data_check)


def _cmd_data_make(a: argparse.Namespace) -> int:
    from edgemm.data.synthetic import SyntheticConfig, make_default, make_video_folder

    kw = {"seed": a.seed}
    if a.samples_per_class is not None:
        kw["samples_per_class"] = a.samples_per_class
    cfg = SyntheticConfig(**kw)
    if a.video:
        if a.out is None:
            raise SystemExit("edgemm data make --video needs --out DIR")
        print(make_video_folder(a.out, clips_per_class=a.clips_per_class, cfg=cfg))
    else:
        print(make_default(cfg, root=a.out))
    return 0


def _cmd_data_check(a: argparse.Namespace) -> int:
    from edgemm.data import PreprocessConfig, open_dataset

    splits = open_dataset(a.path, PreprocessConfig(), format=a.data_format, skip_bad=True)
    counts = {s: len(splits.get(s)) for s in ("train", "val", "test")}
    print(f"{splits.source}: {len(splits.labels)} labels, samples {counts}, {len(splits.skipped)} bad")
    for e in splits.skipped:
        print(f"  bad: {e}")
    return 1 if splits.skipped else 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=_cmd_models)


def _cmd_models(a: argparse.Namespace) -> int:
    from edgemm.models import list_models

    print("\n".join(list_models(a.pattern)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from edgemm import __version__
    from edgemm.profile.cli import add_bench, add_devices, add_profile

    parser = argparse.ArgumentParser(prog="edgemm", description="Audio-visual fusion models from workstation to edge device.")
    parser.add_argument("--version", action="version", version=f"edgemm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    _add_compress(sub)
    _add_export(sub)
    _add_run(sub)
    _add_data(sub)
    _add_models(sub)
    add_profile(sub)
    add_devices(sub)
    add_bench(sub)
    return parser


def _known_runtime_errors() -> tuple[type[Exception], ...]:
    """Errors whose message is the whole story (an export that cannot convert, a missing backend)."""
    from edgemm.export.errors import ExportError
    from edgemm.runtime.backends import BackendUnavailable
    from edgemm.runtime.sinks.display import DisplayError
    from edgemm.runtime.sources.camera import CameraError
    from edgemm.runtime.sources.microphone import MicrophoneError

    from edgemm.runtime.manifest import BundleError

    return ExportError, BackendUnavailable, CameraError, MicrophoneError, DisplayError, BundleError


def main(argv: list[str] | None = None) -> int:
    from edgemm.data.errors import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, FileExistsError, ValueError, *_known_runtime_errors()) as e:
        print(f"edgemm {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgemm {args.command}: interrupted; `--resume` continues from the last finished epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
