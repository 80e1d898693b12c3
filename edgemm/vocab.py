"""edgemm's vocabulary: the names every layer agrees on, spelled once (torch-free).

Export targets and precisions, the training arithmetic, the runtime backends and which targets each
runs, the model's input and output tensor names, the module kept in float at every precision, and
the statuses a verification or a bench row can end in. Training, export, the runtime, device
profiles and the benchmarks import these instead of repeating the strings.
"""

from __future__ import annotations

import enum


class Target(str, enum.Enum):
    """A bundle format (``edgemm export --target``)."""

    ONNX = "onnx"
    OPENVINO = "openvino"
    TFLITE = "tflite"
    EXECUTORCH = "executorch"


class Precision(str, enum.Enum):
    """The numeric precision of an exported model (what a bundle records)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class PrecisionChoice(str, enum.Enum):
    """What a user may ask for: a ``Precision``, or ``auto`` (the fastest that verifies, measured)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    AUTO = "auto"

    @property
    def concrete(self) -> Precision | None:
        """The ``Precision`` asked for, or None for ``auto``."""
        return None if self is PrecisionChoice.AUTO else Precision(self.value)


class Arithmetic(str, enum.Enum):
    """How a model's forward passes compute while training (``edgemm train --precision``); not an
    exported model's ``Precision``."""

    FP32 = "fp32"
    BF16 = "bf16"
    AUTO = "auto"  # bf16 where it is native (edgemm.train.precision.native_bf16), else fp32


class BackendName(str, enum.Enum):
    """A torch-free inference runtime (``edgemm.runtime.backends``)."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TFLITE = "tflite"
    EXECUTORCH = "executorch"


# Which backend runs each target unless asked otherwise, and which targets each backend can open
# (OpenVINO also reads .onnx files). Keys and members are plain strings so manifests compare directly.
DEFAULT_BACKEND: dict[str, BackendName] = {
    Target.ONNX.value: BackendName.ONNXRUNTIME,
    Target.OPENVINO.value: BackendName.OPENVINO,
    Target.TFLITE.value: BackendName.TFLITE,
    Target.EXECUTORCH.value: BackendName.EXECUTORCH,
}
CAN_RUN: dict[BackendName, frozenset[str]] = {
    BackendName.ONNXRUNTIME: frozenset({Target.ONNX.value}),
    BackendName.OPENVINO: frozenset({Target.ONNX.value, Target.OPENVINO.value}),
    BackendName.TFLITE: frozenset({Target.TFLITE.value}),
    BackendName.EXECUTORCH: frozenset({Target.EXECUTORCH.value}),
}


class LatencyStage(str, enum.Enum):
    """A stage ``edgemm profile`` times that a latency budget can apply to."""

    END_TO_END = "end_to_end"  # preprocessing of a camera frame and an audio window, inference, post-processing
    INFERENCE = "inference"  # the model alone


class Input(str, enum.Enum):
    """The model's inputs, in the order of ``forward``: the normalised image, the raw mono
    waveform, and the presence flags (1.0 live, 0.0 absent) of each modality."""

    IMAGE = "image"
    AUDIO = "audio"
    IMAGE_PRESENT = "image_present"
    AUDIO_PRESENT = "audio_present"


INPUT_NAMES: tuple[str, ...] = tuple(i.value for i in Input)
OUTPUT_NAME = "logits"

# The label index of a sample without a label (unlabelled transfer data for distillation).
UNLABELLED = -1

# The in-graph log-mel frontend: the attribute name every model gives it and its class. It stays in
# float32 at every precision (its power spectrum overflows fp16 and loses too much in int8).
FRONTEND_MODULE = "frontend"
FRONTEND_CLASS = "LogMelFrontend"


class FrontendPlace(str, enum.Enum):
    """Where a bundle's log-mel frontend runs (``edgemm export --frontend``)."""

    GRAPH = "graph"  # in the exported model: it takes the waveform, any runtime can run it alone
    RUNTIME = "runtime"  # in edgemm's runtime (numpy FFT, once per hop in live runs): the model takes log-mel


class Int8Scheme(str, enum.Enum):
    """The PT2E quantizer an ``edgemm compress`` qat/ptq stage trains or calibrates with: it decides
    which targets can run the learned program as it is (``FormatSpec.int8_qat_from``)."""

    X86 = "x86"  # X86InductorQuantizer: uint8 activations; runs as QDQ on onnxruntime and OpenVINO
    XNNPACK = "xnnpack"  # ExecuTorch's XNNPACKQuantizer: int8 activations; lowers into XNNPACK's kernels


class Branch(str, enum.Enum):
    """The part of a model a layer belongs to (how the int8 debugger groups its findings)."""

    FRONTEND = "frontend"
    IMAGE = "image"
    AUDIO = "audio"
    FUSION = "fusion"
    HEAD = "head"
    OTHER = "other"


# An edgemm model's top-level modules by branch; a model under the contract (``ContractModel``)
# keeps its own names under ``model.``, which fall back to ``Branch.OTHER`` unless they match.
BRANCH_MODULES: dict[str, Branch] = {
    FRONTEND_MODULE: Branch.FRONTEND, "image_norm": Branch.IMAGE, "image_encoder": Branch.IMAGE,
    "audio_encoder": Branch.AUDIO, "spec_augment": Branch.AUDIO, "fusion": Branch.FUSION, "head": Branch.HEAD,
}


class VerifyStatus(str, enum.Enum):
    """A bundle's ``verification.status``."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    PENDING = "pending"


class BenchStatus(str, enum.Enum):
    """One ``edgemm bench`` row: exported and verified, exported but failed verification, not exported."""

    OK = "ok"
    VERIFICATION_FAILED = "verification-failed"
    EXPORT_FAILED = "export-failed"

    @property
    def mark(self) -> str:
        return {"ok": "✅", "verification-failed": "❎", "export-failed": "❌"}[self.value]
