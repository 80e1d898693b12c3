"""The table that drives ``edgemm export``: one row per target, no chain of flags."""

from __future__ import annotations

from dataclasses import dataclass

from edgemm.vocab import BackendName, Int8Scheme, Precision, Target

__all__ = ["FORMATS", "FormatSpec", "Precision", "Target", "offers"]


@dataclass(frozen=True)
class FormatSpec:
    """What a target produces and how.

    Attributes:
        target: The target.
        module: The module whose ``export(ctx, staging)`` writes the model file(s).
        suffix: Suffix of the main model file.
        precisions: Precisions the target can produce.
        backend: The runtime backend that verifies (and by default runs) the bundle.
        dynamic_batch: Whether the exported batch dimension is dynamic.
        int8_from_float: The maintained tool that calibrates int8 from a float model.
        int8_qat_from: The quantizers whose learned int8 program (``edgemm compress`` qat/ptq)
            the target exports as it is; from any other, int8 is calibrated again.
        extra: Installs the target needs (pip extras of edgemm).
    """

    target: Target
    module: str
    suffix: str
    precisions: tuple[Precision, ...]
    backend: BackendName
    dynamic_batch: bool
    int8_from_float: str
    int8_qat_from: tuple[Int8Scheme, ...]
    extra: str


FORMATS: dict[Target, FormatSpec] = {
    Target.ONNX: FormatSpec(Target.ONNX, "edgemm.export.onnx", ".onnx", tuple(Precision), BackendName.ONNXRUNTIME,
                            dynamic_batch=True, int8_from_float="onnxruntime.quantization (static, QDQ)",
                            int8_qat_from=(Int8Scheme.X86, Int8Scheme.XNNPACK), extra="export"),
    Target.OPENVINO: FormatSpec(Target.OPENVINO, "edgemm.export.openvino", ".xml", tuple(Precision), BackendName.OPENVINO,
                                dynamic_batch=True, int8_from_float="onnxruntime.quantization (static, QDQ) -> OpenVINO IR",
                                int8_qat_from=(Int8Scheme.X86, Int8Scheme.XNNPACK), extra="export-openvino"),
    Target.TFLITE: FormatSpec(Target.TFLITE, "edgemm.export.tflite", ".tflite", tuple(Precision), BackendName.TFLITE,
                              dynamic_batch=False, int8_from_float="ai-edge-quantizer (static, full-integer)",
                              int8_qat_from=(), extra="export-tflite"),
    Target.EXECUTORCH: FormatSpec(Target.EXECUTORCH, "edgemm.export.executorch", ".pte", (Precision.FP32, Precision.INT8),
                                  BackendName.EXECUTORCH, dynamic_batch=False,
                                  int8_from_float="PT2E with ExecuTorch's XNNPACKQuantizer (static, per-channel)",
                                  int8_qat_from=(Int8Scheme.XNNPACK,), extra="export-executorch"),
}


def offers(target: Target | str, precision: Precision | str) -> bool:
    """Whether ``target`` can produce ``precision`` (ExecuTorch, for one, has no fp16 program)."""
    return Precision(precision) in FORMATS[Target(target)].precisions
