"""OpenVINO IR: ``openvino.convert_model`` on the ONNX export, saved as ``model.xml`` + ``model.bin``.

fp16 compresses weights to float16. int8 comes from the QAT/PTQ program of ``edgemm compress``
(QDQ, which OpenVINO runs as int8) or, for a float model, from NNCF post-training quantization;
the log-mel frontend stays float either way. Every bundle asks for f32 inference precision: by
default the CPU plugin runs bf16 where the CPU can, which moved fp32 logits by 5e-3 and cost fp16
bundles 1-2.5 pts of top-1 agreement here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx as onnx_lib
import openvino as ov

from edgemm.export.errors import converting
from edgemm.export.formats import Precision
from edgemm.export.onnx import F32_HINT, FLOAT_SCOPES, TENSORS, scope_nodes, to_onnx
from edgemm.export.source import Artifact, ExportContext

def _nncf_int8(model: "ov.Model", onnx_path: Path, ctx: ExportContext) -> tuple["ov.Model", dict]:
    import nncf

    ignored = scope_nodes(onnx_lib.load(str(onnx_path)))
    data = nncf.Dataset(ctx.calibration.feeds(1))
    quantized = nncf.quantize(model, data, subset_size=len(ctx.calibration), preset=nncf.QuantizationPreset.MIXED,
                              ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
    return quantized, {"method": "ptq", "tool": f"NNCF {nncf.__version__} post-training quantization (mixed preset)",
                       "calibration": {"samples": len(ctx.calibration), "data": ctx.calibration.description},
                       "float_modules": list(FLOAT_SCOPES)}


def export(ctx: ExportContext, staging: Path) -> Artifact:
    src, precision = ctx.source, ctx.precision
    work = staging / "_onnx"
    work.mkdir()
    onnx_path = work / "model.onnx"
    quant, reference, notes = None, "pytorch-fp32", []
    if precision is Precision.INT8 and src.int8 is not None:
        to_onnx(src.int8.graph, onnx_path, src.int8.example_inputs(2), target="openvino")
        stage = src.ckpt["quantization"].get("stage", "qat")
        quant = {"method": stage, "tool": "torchao PT2E -> QDQ ONNX -> OpenVINO (runs as int8)",
                 "float_modules": list(FLOAT_SCOPES)}
        reference = "pytorch-fake-quant"
    else:
        to_onnx(src.model, onnx_path, src.model.example_inputs(2), target="openvino")
    with converting("openvino", src.model, src.model.example_inputs(2)):
        model = ov.convert_model(str(onnx_path))
        if precision is Precision.INT8 and quant is None:
            ctx.log(f"openvino: NNCF int8 calibration on {len(ctx.calibration)} samples")
            model, quant = _nncf_int8(model, onnx_path, ctx)
        ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=precision is Precision.FP16)
    shutil.rmtree(work)
    runtime = {"openvino": dict(F32_HINT)}
    if precision is Precision.FP16:
        notes.append("weights stored as float16 and decompressed at load; compute pinned to f32 (the CPU plugin's "
                     "bf16 default cost 1-2.5 pts of top-1 agreement on the test models); on a GPU set "
                     "INFERENCE_PRECISION_HINT=f16 for speed")
    return Artifact(files={"model": "model.xml", "weights": "model.bin"}, tensors=dict(TENSORS), quantization=quant,
                    runtime=runtime, reference=reference, notes=notes)
