"""``edgemm export``: checkpoint -> verified, self-describing bundle directory.

The exporter for the target (``FORMATS``) writes the model into a staging directory beside the
output; the manifest is written; the bundle is opened with the torch-free runtime and compared with
PyTorch; only then is the staging directory renamed into place. A bundle that fails verification
is still published (to inspect) with ``verification.status = "failed"``, and ``export`` raises.
``--precision auto`` and device profiles are applied a layer above, in ``edgemm.deploy``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from edgemm import __version__
from edgemm.atomic import atomic_write_text, remove_leftovers, scratch_dir
from edgemm.errors import EdgemmError
from edgemm.export.config import ExportConfig
from edgemm.export.errors import ExportError
from edgemm.export.formats import FORMATS, FormatSpec, Precision, Target
from edgemm.export.int8_debug import Sensitivity
from edgemm.export.source import ExportContext, ExportSource, NoSamples, Samples, load_samples, load_source, torch_runner
from edgemm.export.verify import Tolerance, verify
from edgemm.runtime.manifest import (
    SUFFIX,
    BundleError,
    Manifest,
    TensorSpec,
    check_replaceable,
    file_checksum,
    publish,
    read_manifest,
    write_manifest,
)
from edgemm.vocab import OUTPUT_NAME, FrontendPlace, VerifyStatus


class VerificationFailed(EdgemmError, RuntimeError):
    """The exported model disagrees with PyTorch beyond tolerance. The failed bundle is kept, marked
    failed, at ``bundle``: the requested path, or ``NAME.failed.edgemm`` beside it when that already
    held a bundle that had not failed (which is left as it was)."""

    exit_code = 3

    def __init__(self, bundle: Path, message: str) -> None:
        self.bundle = bundle
        self.message = message
        super().__init__(f"{bundle}: verification failed: {message}")


def _audio_input(name: str, aud, batch, frontend: FrontendPlace) -> TensorSpec:
    mel = {"type": "log-mel", "n_fft": aud.n_fft, "win_length": aud.win_length, "hop_length": aud.hop_length,
           "window": "hann", "n_mels": aud.n_mels, "f_min": aud.f_min, "f_max": aud.f_max, "mel_scale": "slaney",
           "log_offset": 1e-6, "runs_in": frontend.value}
    wave = {"sample_rate": aud.sample_rate, "clip_seconds": aud.clip_seconds, "channels": 1, "range": [-1.0, 1.0],
            "align": aud.align.value, "frontend": mel}
    if frontend is FrontendPlace.GRAPH:
        return TensorSpec("audio", name, "audio", [batch, aud.clip_samples], "float32", "NT",
                          {"representation": "raw waveform, frontend in graph", **wave})
    return TensorSpec("audio", name, "audio", [batch, 1, aud.n_mels, aud.n_frames], "float32", "NCFT",
                      {"representation": "log-mel of the raw waveform, computed by the runtime (edgemm.data.logmel: "
                                         "ln(mel power + 1e-6), frames without centre padding)", **wave})


def _inputs(artifact, src: ExportSource, batch) -> list[TensorSpec]:
    img, t = src.preprocess.image, artifact.tensors
    specs = [
        TensorSpec("image", t["image"], "image", [batch, 3, img.size, img.size], "float32", "NCHW",
                   {"color_order": img.color_order, "size": img.size, "resize": "centre crop to square, then resize "
                    "(area when shrinking, bilinear when enlarging)", "scale": 1 / 255, "mean": list(img.mean),
                    "std": list(img.std)}),
        _audio_input(t["audio"], src.preprocess.audio, batch, src.frontend),
        TensorSpec("image_present", t["image_present"], "flag", [batch], "float32", "N",
                   {"meaning": "1.0 when the image is live, 0.0 when absent (covered camera)"}),
        TensorSpec("audio_present", t["audio_present"], "flag", [batch], "float32", "N",
                   {"meaning": "1.0 when the audio is live, 0.0 when absent (muted microphone)"}),
    ]
    k = src.preprocess.frames
    if k > 1:  # a temporal model: each input gains a time axis K after the batch, oldest frame first
        for spec in specs:
            spec.shape[1:1] = [k]
            spec.layout = spec.layout[0] + "K" + spec.layout[1:]
    return specs


def _manifest(src, artifact, staging: Path, target: Target, precision: Precision, data, device: str | None,
              verify: bool) -> Manifest:
    """The manifest of a freshly exported model (verification pending or skipped), with the size and
    hash of every file so that a damaged copy is detected when it is loaded."""
    batch = artifact.batch if isinstance(artifact.batch, int) else "batch"
    return Manifest(
        name=src.name, labels=src.labels, target=target.value, precision=precision.value, files=artifact.files,
        inputs=_inputs(artifact, src, batch),
        outputs=[TensorSpec(OUTPUT_NAME, artifact.tensors[OUTPUT_NAME], "scores", [batch, len(src.labels)], "float32",
                            "NC", {"activation": "softmax gives class probabilities", "labels": "manifest.labels"})],
        preprocess=src.preprocess.to_dict(), batch=artifact.batch, frontend=src.frontend, quantization=artifact.quantization,
        runtime=artifact.runtime,
        source={"checkpoint": str(src.checkpoint), "sha256": src.sha256, "model": src.ckpt["model"],
                "data": str(data), "recipe": src.ckpt.get("recipe"), "notes": artifact.notes, "device": device},
        verification={"status": (VerifyStatus.PENDING if verify else VerifyStatus.SKIPPED).value},
        checksums={role: file_checksum(staging / name) for role, name in artifact.files.items()},
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        edgemm_version=__version__,
    )


def _verify(session, spec, src, artifact, data, precision: Precision, samples: int, tolerance: Tolerance) -> dict:
    """Compares the staged bundle, opened by the torch-free runtime (``session``), with PyTorch."""
    batch = load_samples(data, src.preprocess, src.labels, ("test", "val", "train"), samples)
    reference = src.int8 if artifact.reference == "pytorch-fake-quant" else src.reference
    return {"backend": f"{spec.backend.value} ({session.backend.device})",
            **verify(session.run, torch_runner(reference), batch, precision, reference_name=artifact.reference,
                     labels=src.labels, tol=tolerance)}


def _calibrate(session, src, data, samples: int) -> dict | None:
    """The bundle's ``calibration`` from the validation split (None when the data has none)."""
    from edgemm.export.calibrate import calibrate

    try:
        val = load_samples(data, src.preprocess, src.labels, ("val",), samples)
    except NoSamples:
        return None
    return calibrate(session.run, val)


def compress_report(checkpoint: Path) -> dict | None:
    """The ``edgemm compress`` report beside ``checkpoint`` (its run's ``model.pt``), else None."""
    from edgemm.safeio import load_json, read_text

    report = Path(checkpoint).parent / "report.json"
    if Path(checkpoint).name != "model.pt" or not report.is_file():
        return None
    data = load_json(read_text(report, "compress report"), str(report))
    return data if isinstance(data, dict) and "stages" in data else None


def write_card(manifest: Manifest, staging: Path, report: dict | None) -> None:
    """``MODEL_CARD.md`` in the bundle, and the manifest's ``card`` entry (``edgemm.runtime.card``)."""
    from edgemm.runtime.card import CARD_FILE, card_markdown, lineage_from_report

    manifest.card = {"file": CARD_FILE, **({"lineage": lineage_from_report(report)} if report else {})}
    atomic_write_text(staging / CARD_FILE, card_markdown(manifest))


def bundle_name(name: str, target: Target | str, precision: Precision | str,
                frontend: FrontendPlace | str = FrontendPlace.GRAPH) -> str:
    """``<model>-<target>-<precision>[-runtime-frontend].edgemm``, the one naming rule of bundles;
    a factory reference's model part is ``FILE_FUNCTION`` (a reference is a path: used raw, it
    would place the bundle beside the model's file)."""
    from edgemm.models.contract import model_slug

    frontend = FrontendPlace(getattr(frontend, "value", frontend))
    tail = "" if frontend is FrontendPlace.GRAPH else f"-{frontend.value}-frontend"
    return (f"{model_slug(name)}-{getattr(target, 'value', target)}-{getattr(precision, 'value', precision)}"
            f"{tail}{SUFFIX}")


def default_bundle_path(checkpoint: Path, name: str, target: Target, precision: Precision | str) -> Path:
    """``<checkpoint dir>/`` + ``bundle_name``."""
    return checkpoint.parent / bundle_name(name, target, precision)


def export(checkpoint: str | Path | None = None, config: ExportConfig | None = None, *, out: str | Path | None = None,
           log: Callable[[str], None] = print, **fields: Any) -> Manifest:
    """Exports a checkpoint to a bundle and verifies it.

    ``precision="auto"`` (measure every precision, keep the fastest that verifies) and device
    profiles are a layer above this one: ``edgemm.deploy.export``.

    Args:
        checkpoint: A checkpoint, a run directory, or None for the latest ``edgemm compress`` output.
        config: What to build and how to check it.
        out: Bundle directory (default: ``<checkpoint dir>/<model>-<target>-<precision>.edgemm``).
        log: Progress sink.
        **fields: ``ExportConfig`` fields, instead of ``config`` (``export(ckpt, target="onnx")``).

    Returns:
        The manifest written.

    Raises:
        VerificationFailed: The bundle was written but disagrees with PyTorch beyond tolerance.
    """
    if config is None:
        config = ExportConfig(**fields)
    elif fields:
        raise TypeError(f"export: pass config or its fields, not both (got config and {sorted(fields)})")
    precision, spec = config.concrete, FORMATS[config.target]
    src = load_source(checkpoint)
    if config.frontend is FrontendPlace.RUNTIME:
        try:
            src = src.frontend_at_runtime()
        except ValueError as e:
            raise ExportError(f"--frontend runtime: {e}") from None
    data = config.calib_data or src.ckpt.get("data") or "default"
    # the debugger and a fallback calibrate, whatever the route
    calibrate = config.int8 and (not src.keeps_qat(spec.int8_qat_from) or config.explain or config.max_drop is not None)
    calibration = load_samples(data, src.preprocess, src.labels, ("train",), config.calib_samples) if calibrate else None
    if calibration is not None and src.frontend is FrontendPlace.RUNTIME:
        calibration = calibration.as_logmel(src.preprocess.audio)
    bundle = check_replaceable(Path(out) if out else default_bundle_path(src.checkpoint, src.name, config.target, precision))
    job = _Job(src, spec, config, bundle, calibration, data, log)
    try:
        return _run(job)
    finally:
        job.close()


def _run(job: _Job) -> Manifest:
    """Publishes the job's bundle; for int8 with ``explain`` or a failed verification, the int8
    debugger's report and (with ``max_drop``) the fallback."""
    bundle, log, int8 = job.bundle, job.log, job.config.int8
    explain, max_drop = job.config.explain, job.config.max_drop
    sensitivity = _explain(job) if explain else None
    manifest = job.publish(sensitivity=sensitivity)
    if int8 and _failed(manifest):
        log(f"export: int8 failed verification: {manifest.verification['message']}")
        sensitivity = sensitivity or _explain(job)
        if max_drop is not None:
            manifest = _fall_back(job, sensitivity, manifest)
        else:  # the failed bundle's manifest gets the report (its checksums cover the model files only)
            manifest.quantization["sensitivity"] = sensitivity.to_dict()
            write_manifest(manifest, manifest.location)
    v = manifest.verification
    if v.get("status") == VerifyStatus.FAILED:
        raise VerificationFailed(manifest.location, v["message"] + (_hint(job, sensitivity, max_drop is not None)
                                                         if sensitivity else ""))
    if job.config.verify:
        log(f"export: {bundle} verified on {v['samples']} samples: top-1 agreement {v['top1_agreement']:.4f}, "
            f"max |Δlogit| {v['max_abs_logit_diff']:.2g}, accuracy {v['accuracy']:.4f} "
            f"(reference {v['reference_accuracy']:.4f})")
        if explain:  # what each modality carries, in int8 and in the reference
            log("export: accuracy by condition (int8 / reference): " + ", ".join(
                f"{c.replace('_', ' ')} {r['accuracy']:.4f} / {r['reference_accuracy']:.4f}"
                for c, r in v["conditions"].items()))
    return manifest


def _failed(manifest: Manifest) -> bool:
    return manifest.verification.get("status") == VerifyStatus.FAILED


def _worth_keeping(bundle: Path) -> bool:
    """Whether ``bundle`` exists and is not itself a bundle that failed verification."""
    if not bundle.exists():
        return False
    try:
        return not _failed(read_manifest(bundle))
    except (BundleError, OSError):  # unreadable: not ours to judge, so keep it
        return True


# Float ONNX exports made in this process, by checkpoint content (sha256) and frontend placement,
# newest last: `edgemm bench` and `--precision auto` export one checkpoint to ONNX and OpenVINO at
# several precisions, and each torch.onnx dynamo export of the same model took 10-25 s.
_FLOAT_ONNX: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_FLOAT_ONNX_KEPT = 4


@dataclass
class _Job:
    """One export's fixed inputs; ``publish`` writes, verifies and publishes the bundle."""

    src: ExportSource
    spec: FormatSpec
    config: ExportConfig
    bundle: Path
    calibration: Samples | None
    data: Any
    log: Callable[[str], None]
    _scratch: Path | None = None
    _float_onnx: Path | None = None
    _failed_copy: Path | None = None

    @property
    def precision(self) -> Precision:
        return self.config.concrete

    @property
    def tolerance(self) -> Tolerance:
        return self.config.tolerance

    def _destination(self, manifest: Manifest) -> Path:
        """Where a verified bundle goes: ``bundle``. A failed one goes there too unless that holds a
        bundle that did not fail, which stays as it was: the failed one goes beside it."""
        if not (_failed(manifest) and _worth_keeping(self.bundle)):
            return self.bundle
        self._failed_copy = self.bundle.with_name(f"{self.bundle.stem}.failed{self.bundle.suffix}")
        self.log(f"export: {self.bundle} is left as it was; the bundle that failed verification goes to "
                 f"{self._failed_copy}")
        return self._failed_copy

    def float_onnx(self) -> Path:
        """The source's float model exported to ONNX, once per job (the int8 debugger and every
        publish, fallback re-exports included, copy it) and once per process for the same checkpoint
        and frontend placement (``_FLOAT_ONNX``)."""
        if self._float_onnx is None:
            self._scratch = scratch_dir("export")
            self._float_onnx = self._scratch / "float.onnx"
            key = (self.src.sha256, self.src.frontend.value)
            if key in _FLOAT_ONNX:
                self._float_onnx.write_bytes(_FLOAT_ONNX[key])
                _FLOAT_ONNX.move_to_end(key)
                self.log("export: the float ONNX graph of this checkpoint was exported earlier in this process: reusing it")
                return self._float_onnx
            from edgemm.export.onnx import to_onnx

            model = self.src.model.eval()
            to_onnx(model, self._float_onnx, model.example_inputs(2))
            if [p.name for p in self._scratch.iterdir()] == [self._float_onnx.name]:  # no external data files
                _FLOAT_ONNX[key] = self._float_onnx.read_bytes()
                while len(_FLOAT_ONNX) > _FLOAT_ONNX_KEPT:
                    _FLOAT_ONNX.popitem(last=False)
        return self._float_onnx

    def close(self) -> None:
        """Removes the job's scratch files."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = self._float_onnx = None

    def publish(self, keep_float: tuple[str, ...] = (), sensitivity: Sensitivity | None = None,
                kept: list[dict] | None = None) -> Manifest:
        """Exports into a staging directory, verifies, and renames it into place (also when
        verification fails: the bundle is kept, marked failed)."""
        src, spec, bundle = self.src, self.spec, self.bundle
        bundle.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(bundle.parent, f".staging-{bundle.name}-")  # what killed exports left
        remove_leftovers(bundle.parent, f".old-{bundle.name}-")
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{bundle.name}-{os.getpid()}-", dir=bundle.parent))
        try:
            self.log(f"export: {src.checkpoint} -> {spec.target.value} {self.precision.value}"
                     + (f", keeping {len(keep_float)} layer(s) float" if keep_float else ""))
            try:
                exporter = import_module(spec.module)
            except ImportError as e:
                raise ExportError(f"{spec.target.value}: exporter unavailable ({e}); "
                                  f"pip install 'edgemm[{spec.extra}]'") from e
            artifact = exporter.export(ExportContext(src, self.precision, self.calibration, self.log, keep_float,
                                                     self.float_onnx), staging)
            if artifact.quantization is not None:
                if sensitivity is not None:
                    artifact.quantization["sensitivity"] = sensitivity.to_dict()
                if kept:
                    artifact.quantization["kept_float"] = kept
            manifest = _manifest(src, artifact, staging, spec.target, self.precision, self.data, self.config.device_profile,
                                 self.config.verify)
            write_manifest(manifest, staging)
            if self.config.verify:
                from edgemm.runtime.session import Session

                session = Session(staging, backend=spec.backend)
                manifest.verification = _verify(session, spec, src, artifact, self.data, self.precision,
                                                 self.config.verify_samples, self.tolerance)
                manifest.calibration = _calibrate(session, src, self.data, self.config.verify_samples)
            write_card(manifest, staging, compress_report(src.checkpoint))
            write_manifest(manifest, staging)
            manifest.location = publish(staging, self._destination(manifest))
            if manifest.location == bundle and self._failed_copy is not None:  # a fallback verified
                shutil.rmtree(self._failed_copy, ignore_errors=True)
                self._failed_copy = None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest


def _explain(job: _Job) -> Sensitivity:
    from edgemm.export.int8_debug import analyse

    job.log("export: measuring each layer's int8 error (the int8 debugger)")
    sensitivity = analyse(job.float_onnx(), job.calibration)
    for line in sensitivity.lines():
        job.log(line)
    return sensitivity


def _fall_back(job: _Job, sensitivity: Sensitivity, failed: Manifest) -> Manifest:
    """Keeps the 1, 2, 4, ... layers int8 hurts most in float until verification passes; returns
    the first manifest that passes, else the last one tried (failed)."""
    manifest, k = failed, 1
    while k <= len(sensitivity.layers):
        worst = sensitivity.worst(k)
        kept = [{"module": r.module, "branch": r.branch.value, "lost_db": round(r.lost_db, 2),
                 "why": f"int8 lost {r.lost_db:.1f} dB SQNR at this layer (rank {i + 1}); kept float by --max-drop "
                        f"{job.tolerance.int8_accuracy_points:g} after {failed.verification['message']}"}
                for i, r in enumerate(worst)]
        manifest = job.publish(tuple(r.module for r in worst), sensitivity, kept)
        v = manifest.verification
        job.log(f"export: int8 with {k} layer(s) float: accuracy {v['accuracy']:.4f} (reference "
                f"{v['reference_accuracy']:.4f}), {v['status']}")
        if not _failed(manifest) or k == len(sensitivity.layers):
            return manifest
        k = min(2 * k, len(sensitivity.layers))
    return manifest


def _hint(job: _Job, sensitivity: Sensitivity, fell_back: bool) -> str:
    """The worst layers and the command that keeps them float (or, after a fallback that kept every
    layer float, where else to look)."""
    worst = ", ".join(f"{r.module} ({r.branch.value}, {r.lost_db:.1f} dB lost)" for r in sensitivity.worst(3))
    if fell_back:
        return (f"; int8 hurts most: {worst}; with all {len(sensitivity.layers)} measured layers float it still does "
                f"not verify, so the loss is not in a quantized layer: check that the fp32 export verifies")
    cmd = (f"edgemm export {job.src.checkpoint} --target {job.spec.target.value} --precision int8 "
           f"--max-drop {job.tolerance.int8_accuracy_points:g}")
    return f"; int8 hurts most: {worst}; to keep the worst layers float until it verifies: {cmd}"
