"""OpenVINO IR: ``openvino.convert_model`` on the ONNX export, saved as ``model.xml`` + ``model.bin``.

fp16 compresses weights to float16. int8 is QDQ, which OpenVINO runs as int8: from the QAT/PTQ
program of ``edgemm compress``, or for a float model calibrated by onnxruntime's static quantizer
— the same int8 model as the ONNX bundle, so both runtimes give the same answers. (NNCF's
``quantize`` was the first choice; on the tiny test models it lost 1-6 pts of fused accuracy where
the QDQ route lost none, and its accuracy-controlled variant still lost 1.) The log-mel frontend
stays float either way. Every bundle asks for f32 inference precision: by
default the CPU plugin runs bf16 where the CPU can, which moved fp32 logits by 5e-3 and cost fp16
bundles 1-2.5 pts of top-1 agreement here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import openvino as ov

from edgemm.export.errors import converting
from edgemm.export.formats import FORMATS, Precision, Target
from edgemm.export.onnx import F32_HINT, FLOAT_SCOPES, TENSORS, float_onnx, ptq_int8, to_onnx
from edgemm.export.source import Artifact, ExportContext


def export(ctx: ExportContext, staging: Path) -> Artifact:
    src, precision = ctx.source, ctx.precision
    work = staging / "_onnx"
    work.mkdir()
    onnx_path = work / "model.onnx"
    quant, reference, notes = None, "pytorch-fp32", []
    if precision is Precision.INT8 and src.keeps_qat(FORMATS[Target.OPENVINO].int8_qat_from, ctx.keep_float):
        to_onnx(src.int8.graph, onnx_path, src.int8.example_inputs(2), target="openvino")
        quant = {"method": src.int8_stage, "tool": "torchao PT2E -> QDQ ONNX -> OpenVINO (runs as int8)",
                 "float_modules": list(FLOAT_SCOPES)}
        reference = "pytorch-fake-quant"
    elif precision is Precision.INT8:
        fp32 = float_onnx(ctx, work / "fp32.onnx", target="openvino")
        ctx.log(f"openvino: int8 calibration on {len(ctx.calibration)} samples (onnxruntime QDQ)")
        quant = ptq_int8(fp32, onnx_path, ctx)
        quant["tool"] += " -> OpenVINO (runs as int8)"
        if src.int8 is not None:
            notes.append(src.kept_float_note())
    else:
        float_onnx(ctx, onnx_path, target="openvino")
    with converting("openvino", src.model, src.model.example_inputs(2)):
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=precision is Precision.FP16)
    shutil.rmtree(work)
    runtime = {"openvino": dict(F32_HINT)}
    if precision is Precision.FP16:
        notes.append("weights stored as float16 and decompressed at load; compute pinned to f32 (the CPU plugin's "
                     "bf16 default cost 1-2.5 pts of top-1 agreement on the test models); on a GPU set "
                     "INFERENCE_PRECISION_HINT=f16 for speed")
    return Artifact(files={"model": "model.xml", "weights": "model.bin"}, tensors=dict(TENSORS), quantization=quant,
                    runtime=runtime, reference=reference, notes=notes)
