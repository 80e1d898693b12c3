"""ONNX: ``torch.onnx.export`` (dynamo, opset 18, dynamic batch), checked, simplified where it helps.

fp16 converts weights and compute to float16 with float32 inputs and outputs, keeping the log-mel
frontend in float32 (its power spectrum overflows float16). int8 is QDQ: from the QAT/PTQ program
of ``edgemm compress`` when the checkpoint has one (its learned scales are kept), else calibrated
post-training with onnxruntime's static quantizer. Both leave the frontend in float.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgemm._noise import quiet_onnx_export
from edgemm.export.errors import converting
from edgemm.export.formats import FORMATS, Precision, Target
from edgemm.export.source import Artifact, ExportContext
from edgemm.vocab import FRONTEND_MODULE, INPUT_NAMES, OUTPUT_NAME

OPSET = 18
FLOAT_SCOPES = (FRONTEND_MODULE,)  # module names kept in float32 (fp16 and int8)
TENSORS = {n: n for n in (*INPUT_NAMES, OUTPUT_NAME)}


def to_onnx(module: nn.Module, path: Path, example: tuple, *, target: str = "onnx") -> Path:
    """Exports with a dynamic batch (``example`` must have batch >= 2: batch-1 traces fix it)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    with converting(target, module, example), quiet_onnx_export():
        program = torch.onnx.export(module, example, dynamo=True, opset_version=OPSET, input_names=list(INPUT_NAMES),
                                    output_names=[OUTPUT_NAME], dynamic_shapes=tuple({0: batch} for _ in example),
                                    verbose=False)
        program.save(str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def float_onnx(ctx: ExportContext, path: Path, *, target: str = "onnx") -> Path:
    """The source's float model as ONNX at ``path``: a copy of the job's export
    (``ExportContext.float_onnx``) when there is one, else exported now."""
    if ctx.float_onnx is None:
        model = ctx.source.model
        return to_onnx(model, path, model.example_inputs(2), target=target)
    shutil.copyfile(ctx.float_onnx(), path)
    return path


def scope_nodes(model: onnx.ModelProto, scopes: tuple[str, ...] = FLOAT_SCOPES) -> list[str]:
    """Names of the nodes exported from the given top-level modules (from the exporter's metadata)."""
    names = []
    for node in model.graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.name_scopes":
                path = ast.literal_eval(prop.value)  # a list literal written by the exporter
                if len(path) > 1 and path[1] in scopes:
                    names.append(node.name)
    return names


def simplify(path: Path) -> bool:
    """Runs onnxslim and keeps its result only if it removed nodes; returns whether it did."""
    import onnxslim

    model = onnx.load(str(path))
    slim = onnxslim.slim(model)
    if slim is None or len(slim.graph.node) >= len(model.graph.node):
        return False
    onnx.checker.check_model(slim, full_check=True)
    onnx.save(slim, str(path))
    return True


def quantized_ops(model: onnx.ModelProto) -> dict[str, int]:
    """Counts Conv/MatMul/Gemm nodes whose weight comes from a DequantizeLinear (int8) vs not."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    counts = {"int8": 0, "float": 0}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2:
            continue
        w = producers.get(node.input[1])
        if w is not None and w.op_type == "DequantizeLinear":
            counts["int8"] += 1
        elif node.input[1] in inits or (w is not None and w.op_type in ("Constant", "Transpose")):
            counts["float"] += 1
    return counts


def _sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """Topologically sorts the graph and drops stale type annotations (both left by the float16 converter)."""
    import onnx_ir as ir

    model.graph.ClearField("value_info")  # intermediate types from before the conversion; re-inferred on load

    m = ir.serde.deserialize_model(model)
    m.graph.sort()
    return ir.serde.serialize_model(m)


def reader(feeds: list[dict[str, np.ndarray]]):
    """An onnxruntime ``CalibrationDataReader`` over a list of feed dicts."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_Reader, CalibrationDataReader):
        pass

    return Reader(feeds)


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a list of feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - used by some calibration methods
        raise NotImplementedError


COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # the layers int8 quantizes by their weights


def prepare_for_quantization(fp32: Path, out: Path) -> Path:
    """onnxruntime's pre-processing (shape inference, Conv+BatchNorm folding), then a name for every
    node: ``nodes_to_exclude`` selects by name, and the optimizer leaves some nodes unnamed."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    model = onnx.load(str(out))
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"edgemm_{node.op_type}_{i}"
    onnx.save(model, str(out))
    return out


def layer_module(node: onnx.NodeProto, weight: str | None = None) -> str:
    """The PyTorch module a compute node came from, by its weight's name (``fusion.proj.0.weight``
    or, quantized, ``fusion.proj.0.weight_quantized``: ``fusion.proj.0``); the node's name when its
    weight is not a named parameter (an activation, or a constant the exporter made)."""
    if weight is None:
        weight = node.input[1] if len(node.input) > 1 else ""
    weight = weight.removesuffix("_quantized")
    return weight.removesuffix(".weight") if weight.endswith(".weight") else node.name


def float_nodes(model: onnx.ModelProto, modules: tuple[str, ...]) -> list[str]:
    """The nodes that keep ``modules`` in float: each compute node of those modules and the
    ``edgemm.models.int8.float_region`` around it."""
    from edgemm.models.int8 import float_region

    nodes = list(model.graph.node)
    inits = {i.name for i in model.graph.initializer}
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, []).append(i)
    seeds = [i for i, n in enumerate(nodes) if n.op_type in COMPUTE_OPS
             and any(layer_module(n) == m or layer_module(n).startswith(m + ".") for m in modules)]
    region = float_region(seeds, lambda i: [producer.get(t) for t in nodes[i].input if t not in inits],
                          lambda i: [c for t in nodes[i].output for c in consumers.get(t, [])],
                          lambda i: nodes[i].op_type in COMPUTE_OPS)
    return [nodes[i].name for i in region]


def quantize_qdq(pre: Path, out: Path, feeds: list[dict[str, np.ndarray]], exclude: list[str]) -> None:
    """onnxruntime's static int8 QDQ quantization: per-channel int8 weights, per-tensor asymmetric
    uint8 activations.

    uint8 rather than int8 activations: both are asymmetric with 256 levels, so the model computes
    the same values (verified identical logits), but onnxruntime's x86 kernels take u8 x s8 and fuse
    far fewer QDQ groups with int8 activations (float ops between Dequantize/Quantize pairs): the
    exported teacher ran int8 at 0.68x of fp32 with int8 activations and 1.45x with uint8
    (benchmarks/HISTORY.md, "uint8 activations"). It is also what ``edgemm compress``'s x86 QAT program uses.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with _without_rank_one_notices():
        quantize_static(str(pre), str(out), reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)


def _not_rank_one_notice(record: logging.LogRecord) -> bool:
    msg = record.getMessage()
    return not ("is out-of-range for weight" in msg and "with rank 1" in msg)


@contextlib.contextmanager
def _without_rank_one_notices():
    """onnxruntime's quantizer logs "Axis 1 is out-of-range for weight ... with rank 1" on the root
    logger for every BatchNorm/LayerNorm scale and bias (6 lines on the teacher), then quantizes
    that weight per tensor, as intended: drops exactly those records while it runs."""
    root = logging.getLogger()
    root.addFilter(_not_rank_one_notice)
    try:
        yield
    finally:
        root.removeFilter(_not_rank_one_notice)


def ptq_int8(fp32: Path, out: Path, ctx: ExportContext) -> dict:
    """Static int8 calibration of an fp32 ONNX file into QDQ (per-channel weights), frontend and
    ``ctx.keep_float`` left float."""
    pre = prepare_for_quantization(fp32, out.with_name("pre.onnx"))
    kept = float_nodes(onnx.load(str(pre)), ctx.keep_float) if ctx.keep_float else []
    quantize_qdq(pre, out, ctx.calibration.feeds(1), scope_nodes(onnx.load(str(fp32))) + kept)
    pre.unlink()
    return {"method": "ptq", "tool": "onnxruntime.quantization.quantize_static (QDQ, per-channel int8 weights, "
                                     "uint8 activations)",
            "calibration": {"samples": len(ctx.calibration), "data": ctx.calibration.description},
            "float_modules": [*FLOAT_SCOPES, *ctx.keep_float]}


F32_HINT = {"INFERENCE_PRECISION_HINT": "f32"}
# Per-node debug metadata torch.onnx writes: Python stack traces with the build machine's paths, FX
# node text. ~0.5 MB on the default student (28 % of its int8 file); name scopes stay (small, they
# map nodes to modules).
DEBUG_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node", "pkg.torch.onnx.class_hierarchy",
                  "namespace")


def strip_debug_metadata(path: Path) -> int:
    """Removes ``DEBUG_METADATA`` from every node of the ONNX file in place; returns bytes saved."""
    before = path.stat().st_size
    model = onnx.load(str(path))
    for node in model.graph.node:
        keep = [p for p in node.metadata_props if p.key not in DEBUG_METADATA]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    onnx.save(model, str(path))
    return before - path.stat().st_size


def export(ctx: ExportContext, staging: Path) -> Artifact:
    path = staging / "model.onnx"
    notes, quant, reference = [], None, "pytorch-fp32"
    if ctx.precision is Precision.INT8 and ctx.source.keeps_qat(FORMATS[Target.ONNX].int8_qat_from, ctx.keep_float):
        int8 = ctx.source.int8
        ctx.log("onnx: exporting the QAT/PTQ int8 program as QDQ")
        to_onnx(int8.graph, path, int8.example_inputs(2))
        quant = ctx.source.program_quantization(f"torchao PT2E ({ctx.source.int8_scheme.value} quantizer) -> QDQ ONNX",
                                                list(FLOAT_SCOPES))
        reference = "pytorch-fake-quant"
    else:
        fp32 = float_onnx(ctx, staging / "fp32.onnx")
        if simplify(fp32):
            notes.append("simplified with onnxslim")
        if ctx.precision is Precision.FP32:
            fp32.rename(path)
        elif ctx.precision is Precision.FP16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            proto = onnx.load(str(fp32))
            half = convert_float_to_float16(proto, keep_io_types=True, node_block_list=scope_nodes(proto))
            onnx.save(_sorted(half), str(path))
            onnx.checker.check_model(str(path), full_check=True)
            fp32.unlink()
            notes.append("float16 weights and compute; the log-mel frontend stays float32; inputs/outputs float32")
        else:
            ctx.log(f"onnx: calibrating int8 on {len(ctx.calibration)} samples")
            quant = ptq_int8(fp32, path, ctx)
            if ctx.source.int8 is not None:
                notes.append(ctx.source.kept_float_note())
            fp32.unlink()
    if quant is not None:
        quant["weights"] = quantized_ops(onnx.load(str(path)))
    strip_debug_metadata(path)
    # The same file opened by OpenVINO's CPU plugin would otherwise run in bf16 where the CPU allows it.
    runtime = {} if ctx.precision is Precision.FP16 else {"openvino": dict(F32_HINT)}
    return Artifact(files={"model": path.name}, tensors=dict(TENSORS), quantization=quant, reference=reference,
                    notes=notes, runtime=runtime)
