"""``edgemm train``, ``eval``, ``compress``, ``data`` and ``models``: the commands that need torch
(they import it only when they run)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from edgemm.cli._common import (
    DEVICE_HELP,
    PROFILE_HELP,
    PROVIDER_HELP,
    add_event_options,
    add_remote,
    add_trust,
    emit_json,
    event_config,
    finite_float,
    next_steps,
    positive_int,
    progress_line,
)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from edgemm.train.config import TrainConfig
    from edgemm.train.policies import AugmentPolicy
    from edgemm.vocab import Arithmetic

    d = TrainConfig()
    p = sub.add_parser("train", help="train an audio-visual fusion model", description="Train a registered model.")
    p.add_argument("--model", default="av_student",
                   help="registered model name (see `edgemm models`) or your own: PATH.py:FUNCTION / package.module:FUNCTION "
                        "(docs/models.md)")
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
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="epochs of the schedule on a large set")
    p.add_argument("--min-steps", type=int, default=d.min_steps,
                   help="the schedule runs at least this many optimiser steps, so small sets train long enough (0: off)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=finite_float, default=d.lr)
    p.add_argument("--weight-decay", type=finite_float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=finite_float, default=d.label_smoothing)
    p.add_argument("--modality-dropout", type=finite_float, default=d.modality_dropout)
    p.add_argument("--window-mix", type=finite_float, default=d.window_mix, metavar="P",
                   help="temporal models: probability that a training window's older frames come from another "
                        "sample, as at an event boundary in a stream")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--augment", default=d.augment, choices=[x.value for x in AugmentPolicy],
                   help="augmentation policy: camera (default; no mirror images), natural (adds them), none")
    p.add_argument("--no-augment", action="store_true", help="same as --augment none")
    p.add_argument("--no-ema", action="store_true", help="validate and save the raw weights, not their moving average")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.num_workers, help="DataLoader workers")
    p.add_argument("--device", default=d.device, help=DEVICE_HELP)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--precision", default=d.precision, choices=[x.value for x in Arithmetic],
                   help="fp32, bf16 autocast, or auto: bf16 where the device computes it natively "
                        "(AVX512-BF16/AMX CPUs, recent GPUs)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad data entries (counted) instead of failing")
    p.add_argument("--labels-fraction", type=finite_float, default=d.labels_fraction, metavar="F",
                   help="train on this fraction of the training labels (per class, whole clips); unlabelled samples are skipped")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_trust(p)
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    from edgemm.train import TrainConfig, train

    cfg = TrainConfig(
        epochs=a.epochs, min_steps=a.min_steps, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
        label_smoothing=a.label_smoothing, modality_dropout=a.modality_dropout, window_mix=a.window_mix,
        patience=a.patience,
        augment="none" if a.no_augment else a.augment, ema=not a.no_ema, max_steps=a.max_steps, seed=a.seed, num_workers=a.workers,
        device=a.device, threads=a.threads, precision=a.precision, labels_fraction=a.labels_fraction,
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
        emit_json(a, summary)
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
    p.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (checkpoints)")
    p.add_argument("--backend", default=None, help="runtime backend for a bundle (default: the bundle's own)")
    p.add_argument("--provider", default=None, help=f"{PROVIDER_HELP} (bundles)")
    p.add_argument("--threads", type=positive_int, default=None, help="runtime threads for a bundle")
    p.add_argument("--device-profile", default=None, metavar="PROFILE",
                   help=f"{PROFILE_HELP}: the backend, provider, threads and options a bundle runs with")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--card", action="store_true",
                   help="a bundle: add this evaluation (dated, with its data) to its MODEL_CARD.md and manifest")
    ev = p.add_argument_group("events (a bundle on a long recording)")
    ev.add_argument("--events", type=Path, default=None, metavar="ANNOTATIONS",
                    help="score the events the bundle finds in --video against this DCASE-style file (onset, offset, "
                         "event_label columns): event- and segment-based F1, and frame-level accuracy")
    ev.add_argument("--video", type=Path, default=None, help="the recording --events annotates")
    ev.add_argument("--smooth", type=positive_int, default=1, metavar="K", help="as edgemm run --smooth")
    add_event_options(ev)
    add_trust(p)
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(a: argparse.Namespace) -> int:
    from edgemm.deploy import evaluate
    from edgemm.errors import UsageError
    from edgemm.runtime.manifest import is_bundle

    if (a.events is None) != (a.video is None):
        raise UsageError("--events ANNOTATIONS and --video RECORDING go together")
    if a.card and not is_bundle(a.checkpoint):
        raise UsageError(f"--card adds to a bundle's model card; {a.checkpoint} is not a bundle")
    if a.events is not None:
        return _eval_events(a)

    ev = evaluate(a.checkpoint, data=a.data, split=a.split, data_format=a.data_format, skip_bad=a.skip_bad,
                  device=a.device, device_profile=a.device_profile, backend=a.backend, provider=a.provider,
                  threads=a.threads)
    result = ev.result
    if a.card:
        from edgemm.runtime.card import append_evaluation

        card = append_evaluation(a.checkpoint, {"data": f"{ev.data} [{a.split}]", "n": result.n,
                                                "accuracy": result.accuracy, "accuracy_image_only": result.accuracy_image_only,
                                                "accuracy_audio_only": result.accuracy_audio_only})
        print(f"added to {card}", file=sys.stderr)
    if a.plot:
        from edgemm.metrics import plot_confusion

        plot_confusion(result, a.plot)
    if a.json:
        emit_json(a, ev.to_dict())
        return 0
    print(f"{a.checkpoint} on {ev.data} [{a.split}, n={result.n}]")
    print(f"  fused {result.accuracy:.3f}   image-only {result.accuracy_image_only:.3f}   "
          f"audio-only {result.accuracy_audio_only:.3f}")
    if result.accuracy_clip is not None:
        print(f"  clip-level fused {result.accuracy_clip:.3f} (n={result.n_clips} clips; mean of each clip's samples)")
    for label, acc in result.per_class.items():
        print(f"  {label:<24} {acc:.3f}")
    return 0


def _eval_events(a: argparse.Namespace) -> int:
    from edgemm.deploy import evaluate_events

    ev = evaluate_events(a.checkpoint, a.video, a.events, events=event_config(a), smooth=a.smooth,
                         device_profile=a.device_profile, backend=a.backend, provider=a.provider, threads=a.threads)
    if a.card:
        from edgemm.runtime.card import append_evaluation

        card = append_evaluation(a.checkpoint, {"data": f"{a.video} events", "n": len(ev.reference),
                                                "event_f1": ev.event_based["f1"]})
        print(f"added to {card}", file=sys.stderr)
    if a.json:
        emit_json(a, ev.to_dict())
    else:
        print("\n".join(ev.lines()))
    return 0


def _add_compress(sub: argparse._SubParsersAction) -> None:
    from edgemm.compress.recipe import TeacherOutputMode

    p = sub.add_parser("compress", help="distil, prune and quantise a compact student",
                       description="Distil a student from a teacher, prune it structurally, quantise it to int8.")
    p.add_argument("--teacher", default=None, metavar="CKPT|MODEL|clip=..,clap=..",
                   help="a teacher checkpoint; a model to train as the teacher (registered name or PATH.py:FUNCTION; "
                        "cached per data set); or clip=MODEL,clap=MODEL: a zero-shot teacher from CLIP/CLAP and the "
                        "class names (hub ids or local directories); default: the recipe's teacher")
    p.add_argument("--student", default=None, metavar="MODEL",
                   help="the student: a registered name or PATH.py:FUNCTION (default: the recipe's)")
    p.add_argument("--data", default="default", help="'default', a manifest CSV, or a video folder")
    p.add_argument("--recipe", type=Path, default=None, help="recipe YAML (default: the shipped recipe)")
    p.add_argument("--out", type=Path, default=Path("runs/compress"))
    p.add_argument("--resume", action="store_true", help="reuse finished stages in --out")
    p.add_argument("--no-baseline", action="store_true", help="skip the from-scratch student baseline")
    p.add_argument("--labels-fraction", type=finite_float, default=1.0, metavar="F",
                   help="keep this fraction of the training labels; the rest of the training split is unlabelled "
                        "transfer data for distillation (the baseline and a teacher trained here see only the kept labels)")
    p.add_argument("--teacher-outputs", choices=[m.value for m in TeacherOutputMode], default=None,
                   help="online: the teacher runs on every augmented batch; cached: once per sample on un-augmented "
                        "inputs, cached on disk; auto: cached for a zero-shot teacher (default: the recipe's teacher.outputs)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--print-recipe", action="store_true", help="print the recipe that would run and exit")
    p.add_argument("--json", action="store_true", help="print report.json")
    _add_budget(p)
    add_trust(p)
    p.set_defaults(func=_cmd_compress)


def _add_budget(p: argparse.ArgumentParser) -> None:
    from edgemm.compress.budget import LatencyBudget
    from edgemm.vocab import LatencyStage

    d = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(LatencyBudget)})
    g = p.add_argument_group("to a latency budget measured on the device (docs/devices.md)")
    g.add_argument("--latency-budget", nargs="?", const="profile", default=None, metavar="MS",
                   help="prune in steps until the p90 latency, measured on the device profile's target, precision and "
                        "backend, is at most MS (no value: the profile's latency_budget_ms)")
    g.add_argument("--device-profile", default=None, metavar="PROFILE",
                   help=f"{PROFILE_HELP}: what the budget is measured on")
    g.add_argument("--budget-stage", choices=[s.value for s in LatencyStage], default=d.stage.value,
                   help="end_to_end: preprocessing + inference + post-processing, as `edgemm profile` checks a budget; "
                        "inference: the model alone")
    g.add_argument("--budget-runs", type=positive_int, default=d.runs, help="timed predictions per measurement")
    g.add_argument("--max-ratio", type=finite_float, default=d.max_ratio,
                   help="prune at most this fraction of the channels")
    g.add_argument("--step-ratio", type=finite_float, default=d.step_ratio,
                   help="the fraction of channels each pruning step removes")
    g.add_argument("--latency-aware", action="store_true",
                   help="measure once per device what each layer's width costs there (cached) and prune the channels "
                        "that buy the most time per unit of importance first, instead of every layer alike")
    add_remote(p)


def _budget(a: argparse.Namespace):
    """The ``LatencyBudget`` the flags ask for, or None."""
    from edgemm.compress.budget import LatencyBudget
    from edgemm.devices import load_profile
    from edgemm.errors import UsageError

    if a.latency_budget is None:
        if a.remote:
            raise UsageError("--remote on compress measures a --latency-budget; give one")
        return None
    if a.device_profile is None:
        raise UsageError("--latency-budget: give --device-profile PROFILE (what to export and which backend to time; "
                         "see `edgemm devices`)")
    profile = load_profile(a.device_profile)
    if a.latency_budget == "profile":
        ms = profile.latency_budget_ms
    else:
        try:
            ms = float(a.latency_budget)
        except ValueError:
            raise UsageError(f"--latency-budget: expected milliseconds, got {a.latency_budget!r}") from None
    return LatencyBudget(ms, profile, stage=a.budget_stage, remote=a.remote,
                         ssh_config=str(a.ssh_config) if a.ssh_config else None, remote_edgemm=a.remote_edgemm,
                         remote_timeout=a.remote_timeout, runs=a.budget_runs, max_ratio=a.max_ratio,
                         step_ratio=a.step_ratio, latency_aware=a.latency_aware)


def _cmd_compress(a: argparse.Namespace) -> int:
    from edgemm.compress.recipe import default_recipe_text, load_recipe
    from edgemm.safeio import read_text

    if a.print_recipe:
        load_recipe(a.recipe)  # a user recipe is validated first
        print(default_recipe_text() if a.recipe is None else read_text(a.recipe, "recipe"), end="")
        return 0
    from edgemm.compress import compress

    budget = _budget(a)
    if budget is not None:
        from edgemm.deploy.probe import LatencyProbe

        budget = LatencyProbe(budget)  # with --remote, checks the device before anything trains
    report = compress(out=a.out, data=a.data, teacher=a.teacher, student=a.student, recipe=a.recipe, resume=a.resume,
                      labels_fraction=a.labels_fraction, teacher_outputs=a.teacher_outputs,
                      baseline=not a.no_baseline, device=a.device, seed=a.seed, latency=budget)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    missed = report.get("latency_budget", {}).get("met") is False
    if a.json:
        emit_json(a, report)
        return 1 if missed else 0
    print((a.out / "report.md").read_text())
    if missed:
        lb = report["latency_budget"]
        print(f"edgemm compress: the final model misses the {lb['ms']:g} ms budget: {lb['final']['latency_ms']:.3f} ms "
              f"p90 {lb['stage']} on {lb['measured_on']} (the model and report are written: {a.out})", file=sys.stderr)
        return 1
    from edgemm.export.bundle import default_bundle_path
    from edgemm.vocab import Precision, Target

    quantized = bool(report.get("int8_model"))
    what = "the int8 program trained here" if quantized else "the float model"
    bundle = default_bundle_path(a.out / "model.pt", report["recipe"]["student"], Target.OPENVINO,
                                 Precision.INT8 if quantized else Precision.FP32)
    next_steps(f"edgemm export {a.out} --target openvino   # {what}; or: --device-profile NAME",
               f"edgemm run {bundle} --camera 0 --mic default --show",
               f"edgemm profile {bundle}",
               f"edgemm bench {a.out}   # every target x precision in one table")
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make the embedded default data set, or check a data set")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    m = dsub.add_parser("make", help="generate the default set (manifest CSV; --video: a video folder)")
    m.add_argument("--out", type=Path, default=None, help="parent directory (default: the user cache)")
    m.add_argument("--samples-per-class", type=positive_int, default=None)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--video", action="store_true", help="write H.264+AAC clips in the video-folder format")
    m.add_argument("--clips-per-class", type=positive_int, default=4)
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
        from edgemm.data.synthetic import default_cache_dir

        out = a.out if a.out is not None else default_cache_dir() / "videos" / cfg.key()
        print(make_video_folder(out, clips_per_class=a.clips_per_class, cfg=cfg))
    else:
        print(make_default(cfg, root=a.out))
    return 0


def _cmd_data_check(a: argparse.Namespace) -> int:
    from edgemm.data import PreprocessConfig, open_dataset

    splits = open_dataset(a.path, PreprocessConfig(), format=a.data_format, skip_bad=True,
                          progress=progress_line("data check", "rows"))
    counts = {s: len(splits.get(s)) for s in ("train", "val", "test")}
    print(f"{splits.source}: {len(splits.labels)} labels, samples {counts}, {len(splits.skipped)} bad")
    for e in splits.skipped:
        print(f"  bad: {e}")
    return 1 if splits.skipped else 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'av_*'")
    p.add_argument("--json", action="store_true", help="print the names as a JSON list")
    p.set_defaults(func=_cmd_models)


def _cmd_models(a: argparse.Namespace) -> int:
    from edgemm.models import list_models

    names = list_models(a.pattern)
    if a.json:
        emit_json(a, names)
    elif names:
        print("\n".join(names))
    else:
        print(f"no registered model matches {a.pattern!r}; `edgemm models` lists them all")
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    _add_eval(sub)
    _add_compress(sub)
    _add_data(sub)
    _add_models(sub)
