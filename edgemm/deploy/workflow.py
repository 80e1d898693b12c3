"""Export, evaluate and open bundles with a device profile applied (see ``edgemm.deploy``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgemm.config import parse_enum
from edgemm.devices import DeviceProfile, as_profile
from edgemm.metrics import EvalResult
from edgemm.vocab import FrontendPlace, PrecisionChoice, Target

ProfileArg = DeviceProfile | str | Path | None


def export(checkpoint: Any = None, *, target: Target | str | None = None,
           precision: PrecisionChoice | str | None = None, device_profile: ProfileArg = None,
           out: str | Path | None = None, auto: Any = None, labels: list[str] | None = None,
           data: str | Path | None = None, log: Callable[[str], None] = print, **options):
    """``edgemm export``: a verified bundle, with the device profile's defaults and ``auto`` resolved.

    Args:
        checkpoint: A checkpoint, a run directory, None for the latest ``edgemm compress`` output,
            or a model built by ``edgemm.models.create_model`` (saved first as a checkpoint beside
            the bundle, ``<out>.source.pt``, which the manifest names).
        target: A ``Target`` value (default: the profile's).
        precision: A ``PrecisionChoice`` value (default: ``default_precision``: the profile's, else
            int8 for a quantized ``edgemm compress`` run, else fp32). ``auto`` exports every
            precision and keeps the fastest that verifies, measured on this machine.
        device_profile: A ``DeviceProfile``, a shipped profile name or a YAML path; recorded in the
            manifest, and for ``auto`` its backend, provider, threads and options are measured with.
        out: Bundle directory.
        auto: An ``AutoConfig`` for ``auto`` (default: from the profile, else the target's backend).
        labels: A module's class names in output order (default: the ``data``'s).
        data: A module's data set: its labels, int8 calibration and verification samples.
        log: Progress sink.
        **options: The other ``ExportConfig`` fields: ``calib_data``, ``calib_samples``,
            ``verify_samples``, ``verify``, ``tolerance``, ``explain``, ``max_drop``, ``frontend``
            (default: the profile's, else in the graph).

    Returns:
        The manifest of the published bundle.

    Raises:
        ValueError: No target given or in the profile.
        edgemm.export.VerificationFailed: The bundle disagrees with PyTorch (it is kept, marked failed).
    """
    from edgemm.export import export as export_bundle
    from edgemm.export.config import ExportConfig

    if not isinstance(checkpoint, (str, Path, type(None))):
        checkpoint = _module_checkpoint(checkpoint, out, labels, data, log)
    dev = as_profile(device_profile)
    target = target or (dev.target if dev else None)
    if target is None:
        raise ValueError("--target is required (onnx, openvino or tflite) unless a --device-profile gives it")
    if precision is None:
        precision, why = default_precision(checkpoint, dev)
        log(f"precision: {precision.value} ({why})")
    if options.get("frontend") is None:  # not given: the profile's
        options["frontend"] = dev.frontend if dev else FrontendPlace.GRAPH
    config = ExportConfig(target=target, precision=precision, device_profile=dev.name if dev else None, **options)
    if config.precision is PrecisionChoice.AUTO:
        from edgemm.deploy.auto import AutoConfig, export_auto

        if auto is None:
            kw = dev.session_kwargs(config.target.value) if dev else {}
            auto = AutoConfig(backend=kw.get("backend"), provider=kw.get("provider"), threads=kw.get("threads"),
                              options=kw.get("options") or {})
        return export_auto(checkpoint, config, out=out, auto=auto, log=log)
    return export_bundle(checkpoint, config, out=out, log=log)


def default_precision(checkpoint: str | Path | None, dev: DeviceProfile | None) -> tuple[PrecisionChoice, str]:
    """The precision ``edgemm export`` uses when none is asked for, and why.

    A device profile's precision first; else int8 when the checkpoint carries the int8 program
    ``edgemm compress`` trained (its qat/ptq stage), so the quantized run is what gets exported;
    else fp32.
    """
    if dev is not None:
        return parse_enum(PrecisionChoice, dev.precision, "precision"), f"device profile {dev.name}"
    from edgemm.export.source import resolve_checkpoint
    from edgemm.train.checkpoint import load_checkpoint

    path = resolve_checkpoint(checkpoint)
    quant = load_checkpoint(path).get("quantization")
    if isinstance(quant, dict) and quant.get("file"):
        return PrecisionChoice.INT8, (f"{path} is quantized: it carries the int8 program edgemm compress trained, "
                                      f"{quant['file']}; --precision fp32 exports the float model")
    return PrecisionChoice.FP32, f"{path} is a float checkpoint; --precision int8 calibrates an int8 model"


def _module_checkpoint(model, out: str | Path | None, labels: list[str] | None, data: str | Path | None,
                       log: Callable[[str], None]) -> Path:
    """Saves a model passed to ``export`` as a checkpoint beside its bundle (exports start from one)."""
    from edgemm.models.contract import model_output
    from edgemm.train.checkpoint import atomic_torch_save, make_checkpoint

    if out is None:
        raise ValueError("export(model): pass out= (the bundle directory; the model is saved beside it)")
    if getattr(model, "edgemm_spec", None) is None:
        raise ValueError("export(model): build the model with edgemm.models.create_model (a registered name or "
                         "PATH.py:FUNCTION) so the bundle can be rebuilt and verified from a checkpoint")
    if labels is None:
        if data is None:
            raise ValueError("export(model): pass labels= (class names in output order) or data= (a data set)")
        from edgemm.data import open_dataset

        labels = open_dataset(data, model.preprocess, splits=("train",)).labels
    with_outputs = model_output(model).shape[-1]
    if with_outputs != len(labels):
        raise ValueError(f"export(model): the model returns {with_outputs} logits for {len(labels)} labels")
    path = Path(out).parent / f"{Path(out).name}.source.pt"
    atomic_torch_save(make_checkpoint(model.cpu(), labels=list(labels), **({"data": str(data)} if data else {})),
                      path)
    log(f"export: saved the model as {path}")
    return path


def session_options(bundle: str | Path, device_profile: ProfileArg = None, *, backend: str | None = None,
                    provider: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """``edgemm.runtime.load`` arguments: the explicit ones, completed by the device profile where its
    backend runs the bundle's target."""
    dev = as_profile(device_profile)
    if dev is None:
        return {"backend": backend, "provider": provider, "threads": threads, "options": None}
    from edgemm.runtime.manifest import read_manifest

    return dev.session_kwargs(read_manifest(bundle).target, backend, provider, threads)


def profile_config(bundle: str | Path, device_profile: ProfileArg = None, *, backend: str | None = None,
                   provider: str | None = None, threads: int | None = None,
                   frame_size: tuple[int, int] | None = None, **fields: Any):
    """``edgemm profile``'s configuration of ``bundle``: ``session_options`` and the device profile's
    camera frame size (else 640x480), with ``fields`` (runs, warmup, layers …) as given."""
    from edgemm.profile import ProfileConfig

    dev = as_profile(device_profile)
    kw = session_options(bundle, dev, backend=backend, provider=provider, threads=threads)
    size = frame_size or (dev.input_size if dev else ProfileConfig.frame_size)
    return ProfileConfig(frame_size=size, backend=kw["backend"], provider=kw["provider"], threads=kw["threads"],
                         options=kw["options"] or {}, **fields)


def live_inputs(device_profile: ProfileArg = None, *, camera: str | None = None, mic: str | None = None,
                video: str | Path | None = None, audio_file: str | Path | None = None, realtime: bool = False,
                no_audio: bool = False):
    """``edgemm run``'s media (``edgemm.runtime.run.Inputs``): the ones given, or the device profile's
    camera and microphone when none is; any microphone opens at the profile's sample rate."""
    from edgemm.runtime.run import Inputs

    dev = as_profile(device_profile)
    if dev is not None and camera is None and mic is None and video is None:
        camera, mic = str(dev.camera), None if dev.audio.device is None else str(dev.audio.device)
    return Inputs(camera=camera, mic=mic, video=None if video is None else Path(video),
                  audio_file=None if audio_file is None else Path(audio_file), realtime=realtime, no_audio=no_audio,
                  mic_rate=dev.audio.sample_rate if dev is not None and mic is not None else None)


def open_session(bundle: str | Path, device_profile: ProfileArg = None, *, backend: str | None = None,
                 provider: str | None = None, threads: int | None = None):
    """A loaded bundle (``edgemm.runtime.Session``) run as the device profile says (torch-free)."""
    from edgemm.runtime import load

    return load(bundle, **session_options(bundle, device_profile, backend=backend, provider=provider,
                                          threads=threads))


@dataclass(frozen=True)
class Evaluation:
    """``edgemm eval``'s answer: the metrics, the data evaluated and how many entries were skipped."""

    result: EvalResult
    data: str
    split: str
    skipped: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "split": self.split, "data": self.data, "skipped": self.skipped}


def evaluate(path: str | Path, *, data: str | Path | None = None, split: str = "test", data_format: str | None = None,
             skip_bad: bool = False, device: str = "auto", device_profile: ProfileArg = None,
             backend: str | None = None, provider: str | None = None, threads: int | None = None) -> Evaluation:
    """Fused, image-only and audio-only accuracy of a checkpoint (PyTorch) or a bundle (torch-free).

    Args:
        path: A checkpoint file or run directory, or an exported bundle directory.
        data: Data to evaluate on (default: what the model was trained on).
        split: train, val or test.
        data_format: Force ``manifest`` or ``video``.
        skip_bad: Skip bad entries (counted) instead of failing.
        device: Torch device for a checkpoint (``auto``, ``cpu``, ``cuda[:N]``).
        device_profile: For a bundle: the profile its backend, provider, threads and options come from.
        backend: For a bundle: the runtime backend (default: the bundle's own).
        provider: For a bundle: the execution provider (onnxruntime) or device (OpenVINO).
        threads: For a bundle: runtime threads.
    """
    from edgemm.data import open_dataset
    from edgemm.runtime.manifest import is_bundle

    if is_bundle(path):
        from edgemm.runtime.evaluate import evaluate_session

        session = open_session(path, device_profile, backend=backend, provider=provider, threads=threads)
        labels, preprocess = session.labels, session.preprocess
        data = data or session.manifest.source.get("data") or "default"
        run = lambda ds: evaluate_session(session, ds, labels)  # noqa: E731
    else:
        from edgemm.train import evaluate as evaluate_model
        from edgemm.train import load_model
        from edgemm.train.precision import torch_device

        dev = torch_device(device)
        model, ckpt = load_model(path, map_location=dev)
        labels, preprocess = ckpt["labels"], model.preprocess
        data = data or ckpt.get("data") or "default"
        run = lambda ds: evaluate_model(model, ds, labels, device=dev)  # noqa: E731
    splits = open_dataset(data, preprocess, format=data_format, skip_bad=skip_bad, splits=(split,), labels=labels)
    return Evaluation(run(splits.get(split)), str(data), split, len(splits.skipped))
