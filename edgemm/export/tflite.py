"""TFLite: fp32 with litert-torch, fp16 and full-integer int8 with ai-edge-quantizer.

The model is converted with a fixed batch of 1 (litert-torch's lowering of attention fails with a
dynamic batch); the runtime feeds one sample at a time. int8 is calibrated from the float model
(a compress program's learned scales do not carry over on this route: the manifest says so), with int8 weights and
activations inside and float32 inputs and outputs, and the log-mel frontend left in float.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from edgemm.export.errors import converting
from edgemm.export.formats import Precision
from edgemm.export.source import Artifact, ExportContext
from edgemm.vocab import FRONTEND_CLASS, FRONTEND_MODULE, INPUT_NAMES, OUTPUT_NAME

SIGNATURE = "serving_default"
TENSORS = {**{n: f"args_{i}" for i, n in enumerate(INPUT_NAMES)}, OUTPUT_NAME: "output_0"}
FLOAT_REGEX = f"{FRONTEND_CLASS}_{FRONTEND_MODULE}"  # litert-torch names tensors by module class and attribute


def _calibrate(qt, calibration: list[dict]) -> dict:
    """Activation ranges as the true min/max over all calibration samples.

    ``Quantizer.calibrate`` keeps an exponential moving average (0.95) of per-sample ranges, so with
    one sample per batch the ranges fit the last ~20 samples and clip everything else (measured on
    the late-fusion test model: 92.5 % top-1 agreement with the float model, 100 % with min/max).
    Each sample is calibrated alone and the ranges are merged, through the public API only.
    """
    merged: dict[str, dict] = {}
    with contextlib.redirect_stderr(io.StringIO()):  # a progress bar per call
        for sample in calibration:
            for name, qsv in qt.calibrate({SIGNATURE: [sample]}).items():
                if name not in merged:
                    merged[name] = dict(qsv)
                elif "min" in qsv:
                    m = merged[name]
                    m["min"], m["max"] = np.minimum(m["min"], qsv["min"]), np.maximum(m["max"], qsv["max"])
                    m["num_samples"] = m.get("num_samples", 0) + qsv.get("num_samples", 0)
    return merged


def _quantize(fp32: Path, out: Path, recipe: list, calibration: list[dict] | None) -> None:
    from ai_edge_quantizer import quantizer

    qt = quantizer.Quantizer(str(fp32), recipe)
    result = _calibrate(qt, calibration) if calibration is not None else None
    qt.quantize(result, enable_progress_report=False).export_model(str(out), overwrite=True)


_LAYER_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"}


def module_regex(module: str) -> str:
    """A regex for the tensors of a module path (``fusion.proj.0``) in litert-torch's names, which
    spell each level as ``<class>_<attribute>`` joined by ``/``."""
    return "/" + "/".join(f"[^/;]*_{re.escape(part)}" for part in module.split(".")) + "(?:[;/]|$)"


def float_scopes(fp32: Path, modules: tuple[str, ...]) -> list[str]:
    """Regexes for the ops that keep ``modules`` float in ``fp32``: the modules' own ops and the
    ``edgemm.models.int8.float_region`` around them; an op is named by its scope,
    ai-edge-quantizer's ``get_op_scope``."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    from edgemm.models.int8 import float_region

    model = tfl.read_model(str(fp32))
    graph = model.subgraphs[0]
    ops = list(graph.operators)
    kind = [tfl.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode, "") for op in ops]
    scope = [tfl.get_op_scope(op, graph.tensors) for op in ops]
    producer = {t: i for i, op in enumerate(ops) for t in op.outputs}
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            consumers.setdefault(t, []).append(i)
    own = [i for i in range(len(ops)) if any(re.search(module_regex(m), scope[i]) for m in modules)]
    keep = float_region(own, lambda i: [producer.get(t) for t in ops[i].inputs],
                        lambda i: [c for t in ops[i].outputs for c in consumers.get(t, [])],
                        lambda i: kind[i] in _LAYER_OPS)
    return sorted({"^" + re.escape(scope[i]) + "$" for i in keep if scope[i]})


def _keep_float(recipe: list, scopes: Sequence[str] = ()) -> list:
    """Leaves the frontend's ops, the ops ``scopes`` match, every division and the model's inputs/outputs
    unquantized.

    A division's int8 divisor can round to its zero point, and LiteRT's int8 DIV then refuses to
    run (``div.cc: data[i] != zero_point``): measured on the default teacher's normalisations,
    whose TFLite int8 export failed verification on it.
    """
    no = {"algorithm_key": "no_quantize", "op_config": {}}
    return [*recipe, {"regex": FLOAT_REGEX, "operation": "*", **no},
            *({"regex": r, "operation": "*", **no} for r in scopes), {"regex": ".*", "operation": "DIV", **no},
            {"regex": ".*", "operation": "INPUT", **no}, {"regex": ".*", "operation": "OUTPUT", **no}]


def export(ctx: ExportContext, staging: Path) -> Artifact:
    import litert_torch

    model, precision = ctx.source.model.eval(), ctx.precision
    example = tuple(x[:1] for x in model.example_inputs(2))
    path = staging / "model.tflite"
    fp32 = path if precision is Precision.FP32 else staging / "fp32.tflite"
    with converting("tflite", model, example):
        litert_torch.convert(model, example).export(str(fp32))
    quant, notes = None, []
    if precision is Precision.FP16:
        from ai_edge_quantizer import qtyping

        recipe = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
                   "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": qtyping.TensorDataType.FLOAT},
                                 "compute_precision": qtyping.ComputePrecision.FLOAT, "explicit_dequantize": True}}]
        _quantize(fp32, path, _keep_float(recipe), None)
        notes.append("float16 weights, float32 compute (ai-edge-quantizer float casting)")
    elif precision is Precision.INT8:
        from ai_edge_quantizer import recipe as recipes

        calib = [{TENSORS[k]: v for k, v in feed.items()} for feed in ctx.calibration.feeds(1)]
        ctx.log(f"tflite: ai-edge-quantizer int8 calibration on {len(calib)} samples")
        scopes = float_scopes(fp32, ctx.keep_float) if ctx.keep_float else []
        _quantize(fp32, path, _keep_float(recipes.static_wi8_ai8(), scopes), calib)
        quant = {"method": "ptq", "tool": "ai-edge-quantizer static_wi8_ai8 (int8 weights and activations), min/max ranges",
                 "calibration": {"samples": len(calib), "data": ctx.calibration.description},
                 "float_modules": [FRONTEND_MODULE, *ctx.keep_float], "io": "float32"}
        if ctx.source.int8 is not None:
            notes.append(ctx.source.recalibrated(f"the {ctx.source.int8_stage.upper()} program's learned "
                                                 "quantization does not carry into TFLite on this route"))
    if fp32 != path:
        fp32.unlink()
    return Artifact(files={"model": path.name}, tensors=dict(TENSORS), batch=1, quantization=quant, notes=notes)
