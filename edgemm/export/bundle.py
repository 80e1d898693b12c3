"""``edgemm export``: checkpoint -> verified, self-describing bundle directory.

The exporter for the target (``FORMATS``) writes the model into a staging directory beside the
output; the manifest is written; the bundle is opened with the torch-free runtime and compared with
PyTorch; only then is the staging directory renamed into place. A bundle that fails verification
is still published (to inspect) with ``verification.status = "failed"``, and ``export`` raises.
``--precision auto`` and device profiles are applied a layer above, in ``edgemm.deploy``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
from importlib import import_module
from pathlib import Path
from typing import Callable

from edgemm import __version__
from edgemm.atomic import remove_leftovers
from edgemm.config import parse_enum
from edgemm.errors import EdgemmError
from edgemm.export.errors import ExportError
from edgemm.export.formats import FORMATS, Precision, Target
from edgemm.export.source import ExportContext, load_samples, load_source, torch_runner
from edgemm.export.verify import Tolerance, verify
from edgemm.runtime.manifest import SUFFIX, Manifest, TensorSpec, file_checksum, publish, write_manifest
from edgemm.vocab import OUTPUT_NAME, VerifyStatus


class VerificationFailed(EdgemmError, RuntimeError):
    """The exported model disagrees with PyTorch beyond tolerance (the bundle is kept, marked failed)."""

    exit_code = 3

    def __init__(self, bundle: Path, message: str) -> None:
        self.bundle = bundle
        self.message = message
        super().__init__(f"{bundle}: verification failed: {message}")


def _inputs(artifact, preprocess, batch) -> list[TensorSpec]:
    img, aud = preprocess.image, preprocess.audio
    t = artifact.tensors
    return [
        TensorSpec("image", t["image"], "image", [batch, 3, img.size, img.size], "float32", "NCHW",
                   {"color_order": img.color_order, "size": img.size, "resize": "centre crop to square, then resize "
                    "(area when shrinking, bilinear when enlarging)", "scale": 1 / 255, "mean": list(img.mean),
                    "std": list(img.std)}),
        TensorSpec("audio", t["audio"], "audio", [batch, aud.clip_samples], "float32", "NT",
                   {"representation": "raw waveform, frontend in graph", "sample_rate": aud.sample_rate,
                    "clip_seconds": aud.clip_seconds, "channels": 1, "range": [-1.0, 1.0], "align": aud.align.value,
                    "frontend": {"type": "log-mel", "n_fft": aud.n_fft, "win_length": aud.win_length,
                                 "hop_length": aud.hop_length, "window": "hann", "n_mels": aud.n_mels,
                                 "f_min": aud.f_min, "f_max": aud.f_max, "mel_scale": "slaney", "log_offset": 1e-6}}),
        TensorSpec("image_present", t["image_present"], "flag", [batch], "float32", "N",
                   {"meaning": "1.0 when the image is live, 0.0 when absent (covered camera)"}),
        TensorSpec("audio_present", t["audio_present"], "flag", [batch], "float32", "N",
                   {"meaning": "1.0 when the audio is live, 0.0 when absent (muted microphone)"}),
    ]


def _manifest(src, artifact, staging: Path, target: Target, precision: Precision, data, device: str | None,
              verify_output: bool) -> Manifest:
    """The manifest of a freshly exported model (verification pending or skipped), with the size and
    hash of every file so that a damaged copy is detected when it is loaded."""
    batch = artifact.batch if isinstance(artifact.batch, int) else "batch"
    return Manifest(
        name=src.name, labels=src.labels, target=target.value, precision=precision.value, files=artifact.files,
        inputs=_inputs(artifact, src.preprocess, batch),
        outputs=[TensorSpec(OUTPUT_NAME, artifact.tensors[OUTPUT_NAME], "scores", [batch, len(src.labels)], "float32",
                            "NC", {"activation": "softmax gives class probabilities", "labels": "manifest.labels"})],
        preprocess=src.preprocess.to_dict(), batch=artifact.batch, quantization=artifact.quantization,
        runtime=artifact.runtime,
        source={"checkpoint": str(src.checkpoint), "sha256": src.sha256, "model": src.ckpt["model"],
                "data": str(data), "recipe": src.ckpt.get("recipe"), "notes": artifact.notes, "device": device},
        verification={"status": (VerifyStatus.PENDING if verify_output else VerifyStatus.SKIPPED).value},
        checksums={role: file_checksum(staging / name) for role, name in artifact.files.items()},
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        edgemm_version=__version__,
    )


def _verify(staging: Path, spec, src, artifact, data, precision: Precision, samples: int,
            tolerance: Tolerance) -> dict:
    """Opens the staged bundle with the torch-free runtime and compares it with PyTorch."""
    from edgemm.runtime.session import Session

    batch = load_samples(data, src.preprocess, src.labels, ("test", "val", "train"), samples)
    session = Session(staging, backend=spec.backend)
    reference = src.int8 if artifact.reference == "pytorch-fake-quant" else src.model
    return {"backend": f"{spec.backend.value} ({session.backend.device})",
            **verify(session.run, torch_runner(reference), batch, precision, reference_name=artifact.reference,
                     labels=src.labels, tol=tolerance)}


def default_bundle_path(checkpoint: Path, name: str, target: Target, precision: Precision | str) -> Path:
    """``<checkpoint dir>/<model>-<target>-<precision>.edgemm``; a factory reference's model part is
    ``FILE_FUNCTION`` (a reference is a path: it must not place the bundle beside the model's file)."""
    from edgemm.models.contract import model_slug

    return checkpoint.parent / f"{model_slug(name)}-{target.value}-{getattr(precision, 'value', precision)}{SUFFIX}"


def export(checkpoint: str | Path | None = None, *, target: Target | str, precision: Precision | str = Precision.FP32,
           out: str | Path | None = None, calib_data: str | Path | None = None, verify_output: bool = True,
           calib_samples: int = 256, verify_samples: int = 256, tolerance: Tolerance = Tolerance(),
           device: str | None = None, log: Callable[[str], None] = print) -> Manifest:
    """Exports a checkpoint to a bundle and verifies it.

    ``precision="auto"`` (measure every precision, keep the fastest that verifies) and device
    profiles are a layer above this one: ``edgemm.deploy.export``.

    Args:
        checkpoint: A checkpoint, a run directory, or None for the latest ``edgemm compress`` output.
        target: A ``Target`` value.
        precision: A ``Precision`` value.
        out: Bundle directory (default: ``<checkpoint dir>/<model>-<target>-<precision>.edgemm``).
        calib_data: Data for int8 calibration (default: the checkpoint's training data, train split).
        verify_output: Compare with PyTorch after export (on by default).
        calib_samples: Calibration samples.
        verify_samples: Verification samples (test split first, topped up from val, then train).
        tolerance: Verification criteria.
        device: Device profile name recorded in the manifest.
        log: Progress sink.

    Returns:
        The manifest written.

    Raises:
        VerificationFailed: The bundle was written but disagrees with PyTorch beyond tolerance.
    """
    target = parse_enum(Target, target, "--target")
    if precision == "auto":
        raise ValueError("precision 'auto' is measured on a backend: use edgemm.deploy.export(..., precision='auto')")
    precision = parse_enum(Precision, precision, "--precision")
    spec = FORMATS[target]
    if precision not in spec.precisions:
        raise ValueError(f"--precision: {target.value} supports {[p.value for p in spec.precisions]}, not {precision.value}")
    src = load_source(checkpoint)
    data = calib_data or src.ckpt.get("data") or "default"
    needs_calibration = precision is Precision.INT8 and (src.int8 is None or not spec.int8_keeps_qat)
    calibration = (load_samples(data, src.preprocess, src.labels, ("train",), calib_samples)
                   if needs_calibration else None)
    bundle = Path(out) if out else default_bundle_path(src.checkpoint, src.name, target, precision)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(bundle.parent, f".staging-{bundle.name}-")  # what killed exports left
    remove_leftovers(bundle.parent, f".old-{bundle.name}-")
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{bundle.name}-{os.getpid()}-", dir=bundle.parent))
    try:
        log(f"export: {src.checkpoint} -> {target.value} {precision.value}")
        try:
            exporter = import_module(spec.module)
        except ImportError as e:
            raise ExportError(f"{target.value}: exporter unavailable ({e}); pip install 'edgemm[{spec.extra}]'") from e
        artifact = exporter.export(ExportContext(src, precision, calibration, log), staging)
        manifest = _manifest(src, artifact, staging, target, precision, data, device, verify_output)
        write_manifest(manifest, staging)
        if verify_output:
            tol = dataclasses.replace(tolerance, max_abs_logit=max(tolerance.max_abs_logit, spec.fp32_logit_floor))
            manifest.verification = _verify(staging, spec, src, artifact, data, precision, verify_samples, tol)
            write_manifest(manifest, staging)
        publish(staging, bundle)
        manifest.location = bundle
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    v = manifest.verification
    if v.get("status") == VerifyStatus.FAILED:
        raise VerificationFailed(bundle, v["message"])
    if verify_output:
        log(f"export: {bundle} verified on {v['samples']} samples: top-1 agreement {v['top1_agreement']:.4f}, "
            f"max |Δlogit| {v['max_abs_logit_diff']:.2g}, accuracy {v['accuracy']:.4f} "
            f"(reference {v['reference_accuracy']:.4f})")
    return manifest
