"""What an export starts from: the checkpoint, its int8 program if any, and fixed data samples."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from edgemm.data.preprocess import AudioConfig, PreprocessConfig
from edgemm.export.formats import Precision
from edgemm.vocab import FrontendPlace, Int8Scheme

DEFAULT_RUN = Path("runs/compress")
CHECKPOINT_NAMES = ("model.pt", "best.pt", "last.pt")  # compress output, then train output


def resolve_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint file from a file, a run directory, or nothing (the latest ``edgemm compress`` output).

    Raises:
        FileNotFoundError: Naming what was looked for.
    """
    if path is None:
        path = DEFAULT_RUN
        if not (path / "model.pt").is_file():
            raise FileNotFoundError(f"no checkpoint given and no `edgemm compress` output at {path / 'model.pt'}; "
                                    "run `edgemm compress` or pass a checkpoint or run directory")
    path = Path(path)
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: no checkpoint in this directory (looked for {', '.join(CHECKPOINT_NAMES)})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ExportSource:
    """The float model, its learned int8 program (after qat/ptq in ``edgemm compress``), provenance."""

    checkpoint: Path
    ckpt: dict[str, Any]
    model: nn.Module
    int8: nn.Module | None
    sha256: str
    waveform_model: nn.Module | None = None  # with the frontend at runtime: the model that takes the waveform

    @property
    def labels(self) -> list[str]:
        return list(self.ckpt["labels"])

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.model.preprocess

    @property
    def name(self) -> str:
        return self.ckpt["model"]["name"]

    @property
    def frontend(self) -> FrontendPlace:
        """Where the bundle computes the log-mel (``frontend_at_runtime`` moves it out of the model)."""
        return FrontendPlace.GRAPH if self.waveform_model is None else FrontendPlace.RUNTIME

    @property
    def reference(self) -> nn.Module:
        """The float model a bundle must agree with: it takes the waveform, as the runtime is given."""
        return self.model if self.waveform_model is None else self.waveform_model

    def frontend_at_runtime(self) -> "ExportSource":
        """This source with the log-mel frontend taken out of the model (``--frontend runtime``).

        A learned int8 program has the frontend inside it, so int8 exports of this source are
        calibrated afresh, on the log-mel the runtime computes.

        Raises:
            ValueError: The model has no edgemm log-mel frontend to take out (see ``without_frontend``).
        """
        from edgemm.models.frontend import without_frontend

        return dataclasses.replace(self, model=without_frontend(self.model).eval(), int8=None,
                                   waveform_model=self.model)

    @property
    def int8_scheme(self) -> Int8Scheme | None:
        """The quantizer of the int8 program (checkpoints from before the choice: x86), or None."""
        if self.int8 is None:
            return None
        return Int8Scheme(self.ckpt["quantization"].get("quantizer", Int8Scheme.X86.value))

    @property
    def int8_stage(self) -> str | None:
        """The ``edgemm compress`` stage that made the int8 program (``qat`` or ``ptq``), or None."""
        if self.int8 is None:
            return None
        return self.ckpt["quantization"].get("stage", "qat")

    def program_quantization(self, tool: str, float_modules: list[str]) -> dict[str, Any]:
        """The manifest's ``quantization`` of a bundle that carries the int8 program as it is."""
        stage = self.int8_stage
        return {"method": stage, "tool": tool, "calibration": None if stage == "qat" else "edgemm compress ptq stage",
                "float_modules": float_modules}

    def recalibrated(self, why: str) -> str:
        """The bundle note of an int8 export calibrated afresh instead of carrying the program, ``why``."""
        weights = "QAT-trained float weights" if self.int8_stage == "qat" else "float weights"
        return f"{why}: int8 was calibrated post-training from the {weights}"

    def kept_float_note(self) -> str:
        """The note of an int8 export that keeps layers float although the checkpoint has an int8 program."""
        return (self.recalibrated("layers kept float (--max-drop)")
                + f", since the {self.int8_stage.upper()} program quantizes every layer")

    def keeps_qat(self, accepted: tuple[Int8Scheme, ...], keep_float: tuple[str, ...] = ()) -> bool:
        """Whether a target that runs programs of the ``accepted`` quantizers exports the learned int8
        program as it is (not when layers must stay float: the program quantizes every layer)."""
        return self.int8 is not None and self.int8_scheme in accepted and not keep_float


def load_source(path: str | Path | None) -> ExportSource:
    from edgemm.export.errors import ExportError
    from edgemm.train.checkpoint import load_model, non_finite

    ckpt_path = resolve_checkpoint(path)
    model, ckpt = load_model(ckpt_path)
    bad = non_finite(model.state_dict())
    if bad:
        raise ExportError(f"{ckpt_path}: {len(bad)} weight tensors hold NaN or infinity (first {bad[0]!r}); "
                          "the model is broken and is not exported")
    int8 = None
    quant = ckpt.get("quantization")
    if quant:
        int8_path = ckpt_path.parent / quant["file"]
        if not int8_path.is_file():
            raise FileNotFoundError(f"{ckpt_path} says its int8 model is {int8_path}, which does not exist")
        from edgemm.models.int8 import load_int8

        int8 = load_int8(int8_path, model.preprocess)
    return ExportSource(ckpt_path, ckpt, model.eval(), int8, sha256(ckpt_path))


@dataclass
class Samples:
    """Preprocessed samples (what the data pipeline and the runtime feed the model) and their labels."""

    image: np.ndarray
    audio: np.ndarray
    label: np.ndarray
    description: str = ""

    def __len__(self) -> int:
        return len(self.label)

    def as_logmel(self, cfg: AudioConfig) -> "Samples":
        """These samples with the audio as the runtime's log-mel (``edgemm.data.logmel``)."""
        from edgemm.data.logmel import LogMel

        return dataclasses.replace(self, audio=LogMel(cfg)(self.audio))

    def feeds(self, batch: int = 1) -> list[dict[str, np.ndarray]]:
        """Input dicts (edgemm names) of ``batch`` samples, for calibration.

        Presence flags cycle through both-live, both-live, image-only, audio-only (as modality
        dropout does in training), so calibrated ranges cover an absent modality too: calibrating
        with flags fixed at 1.0 gives the flag a zero range and breaks the absent-modality path.
        """
        cycle = ((1.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0))
        out = []
        for k, i in enumerate(range(0, len(self), batch)):
            image = self.image[i:i + batch]
            flags = image.shape[:-3]  # (n,), or a temporal model's (n, K)
            pi, pa = cycle[k % len(cycle)]
            out.append({"image": image, "audio": self.audio[i:i + batch],
                        "image_present": np.full(flags, pi, np.float32), "audio_present": np.full(flags, pa, np.float32)})
        return out


class NoSamples(ValueError):
    """The data has no sample in the splits asked for."""


def load_samples(data: str | Path, preprocess: PreprocessConfig, labels: list[str], splits: tuple[str, ...],
                 n: int) -> Samples:
    """``n`` samples of ``splits``, evenly spaced through each split (topping up from the next split
    when one is short).

    Even spacing rather than the first ``n``: data sets are often stored class by class, and a
    calibration set that sees only some classes gives int8 ranges that clip the others (measured:
    -11 pts fused accuracy with NNCF on a 4-class set from its first 64 of 120 samples). The choice
    is deterministic, so verification figures are comparable across exports.
    """
    from edgemm.data import open_dataset

    ds = open_dataset(data, preprocess, splits=splits, labels=labels)
    items, used = [], []
    for split in splits:
        part = ds.get(split)
        take = min(n - len(items), len(part))
        if take:
            items += [part[int(i)] for i in np.linspace(0, len(part) - 1, take).round()]
            used.append(f"{split} {take} of {len(part)}")
        if len(items) >= n:
            break
    if not items:
        raise NoSamples(f"{data}: no samples in splits {splits} for calibration / verification")
    return Samples(np.stack([it["image"] for it in items]).astype(np.float32),
                   np.stack([it["audio"] for it in items]).astype(np.float32),
                   np.array([int(it["label"]) for it in items]), f"{data} {' + '.join(used)}")


def torch_runner(model: nn.Module) -> Callable[..., np.ndarray]:
    """``run(image, audio, image_present, audio_present) -> logits`` on numpy arrays, for verification."""

    @torch.no_grad()
    def run(image, audio, image_present, audio_present):
        model.eval()
        args = [torch.from_numpy(np.ascontiguousarray(a)) for a in (image, audio, image_present, audio_present)]
        return model(*args).float().numpy()

    return run


@dataclass
class ExportContext:
    """Everything an exporter needs; exporters write files into ``staging`` and return an ``Artifact``.

    Attributes:
        source: The checkpoint.
        precision: The precision to produce.
        calibration: int8 calibration samples (None when no calibration is needed).
        log: Progress sink.
        keep_float: int8: module paths (``fusion.proj.0``) to leave in float besides the frontend,
            chosen by the int8 debugger's fallback.
        float_onnx: Gives the source's float model exported to ONNX, made once per export job
            (the int8 debugger and each fallback re-export share it); None: the exporter exports.
    """

    source: ExportSource
    precision: Precision
    calibration: Samples | None
    log: Callable[[str], None] = print
    keep_float: tuple[str, ...] = ()
    float_onnx: Callable[[], Path] | None = None


@dataclass
class Artifact:
    """What an exporter produced.

    Attributes:
        files: Role -> file name inside the bundle (``model`` is required).
        tensors: edgemm input/output name -> name inside the model file.
        batch: ``"dynamic"`` or the fixed batch size.
        quantization: How int8 was obtained (method, calibration, what stayed float), else None.
        runtime: Per-backend settings the runtime applies (e.g. OpenVINO inference precision).
        reference: ``"pytorch-fp32"`` or ``"pytorch-fake-quant"``: what verification compares with.
        notes: Things the user should know about this export.
    """

    files: dict[str, str]
    tensors: dict[str, str]
    batch: int | str = "dynamic"
    quantization: dict[str, Any] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    reference: str = "pytorch-fp32"
    notes: list[str] = field(default_factory=list)
