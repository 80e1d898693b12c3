"""ExecuTorch: a ``.pte`` program lowered to XNNPACK, fp32 or int8.

``torch.export`` captures the model with a batch of 1, ``to_edge_transform_and_lower`` hands every
subgraph XNNPACK supports to the XNNPACK delegate, and ``to_executorch`` writes the program. int8
is PT2E with ExecuTorch's ``XNNPACKQuantizer`` (int8 weights per channel, int8 activations), calibrated
post-training on the float model, so the int8 ops lower into XNNPACK's int8 kernels; the log-mel
frontend stays float. A qat/ptq program of ``edgemm compress`` made with ``quantizer: xnnpack`` is
lowered as it is (its learned scales carry over; verified against its fake-quant graph). One made
with the default x86 quantizer (uint8 activations) the XNNPACK delegate does not take: int8 is then
calibrated from the float weights and the manifest says so.

Verification and the runtime backend use ExecuTorch's Python runtime, which links libtorch; on a
device without torch, ExecuTorch's C++ runtime runs the same ``.pte``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgemm.export.errors import converting
from edgemm.export.formats import FORMATS, Precision, Target
from edgemm.export.source import Artifact, ExportContext, Samples
from edgemm.vocab import FRONTEND_MODULE, INPUT_NAMES, OUTPUT_NAME

# The program's inputs are positional; the bundle names them by position.
TENSORS = {**{n: f"input_{i}" for i, n in enumerate(INPUT_NAMES)}, OUTPUT_NAME: "output_0"}


def lower(module: nn.Module, example: tuple[torch.Tensor, ...]) -> bytes:
    """``module`` exported, lowered to the XNNPACK delegate, as ``.pte`` bytes."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(module, example)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


@torch.no_grad()
def ptq_int8(model: nn.Module, example: tuple[torch.Tensor, ...], calibration: Samples,
             keep_float: tuple[str, ...] = ()) -> nn.Module:
    """The PT2E int8 model of ``model``, calibrated one sample at a time on ``calibration``."""
    from edgemm._noise import quiet_torchao_import

    quiet_torchao_import()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from edgemm.models.int8 import convert_pt2e, xnnpack_quantizer

    prepared = prepare_pt2e(torch.export.export(model, example).module(), xnnpack_quantizer(False, keep_float))
    for feed in calibration.feeds(1):
        prepared(*(torch.from_numpy(feed[name]) for name in INPUT_NAMES))
    return convert_pt2e(prepared)


def export(ctx: ExportContext, staging: Path) -> Artifact:
    model = ctx.source.model.eval()
    example = tuple(x[:1] for x in model.example_inputs(2))
    path = staging / "model.pte"
    quant, notes, module, reference = None, [], model, "pytorch-fp32"
    if ctx.precision is Precision.INT8 and ctx.source.keeps_qat(FORMATS[Target.EXECUTORCH].int8_qat_from, ctx.keep_float):
        ctx.log("executorch: lowering the XNNPACK QAT/PTQ program of edgemm compress as it is")
        module = ctx.source.int8.graph
        quant = {**ctx.source.program_quantization("torchao PT2E with XNNPACKQuantizer (edgemm compress) -> XNNPACK "
                                                   "delegate", [FRONTEND_MODULE]), "io": "float32"}
        reference = "pytorch-fake-quant"
    elif ctx.precision is Precision.INT8:
        ctx.log(f"executorch: XNNPACKQuantizer int8 calibration on {len(ctx.calibration)} samples")
        module = ptq_int8(model, example, ctx.calibration, ctx.keep_float)
        quant = {"method": "ptq", "tool": "torchao PT2E with XNNPACKQuantizer (per-channel int8 weights, int8 "
                 "activations) -> XNNPACK delegate",
                 "calibration": {"samples": len(ctx.calibration), "data": ctx.calibration.description},
                 "float_modules": [FRONTEND_MODULE, *ctx.keep_float], "io": "float32"}
        if ctx.source.int8 is not None and not ctx.keep_float:
            stage = ctx.source.int8_stage
            notes.append(ctx.source.recalibrated(
                f"the {stage.upper()} program uses the x86 quantizer (uint8 activations), which XNNPACK does not "
                f"take") + f" (a {stage} stage with quantizer: xnnpack carries its learned scales over)")
        elif ctx.source.int8 is not None:
            notes.append(ctx.source.kept_float_note())
    with converting("executorch", model, example):
        path.write_bytes(lower(module, example))
    return Artifact(files={"model": path.name}, tensors=dict(TENSORS), batch=1, quantization=quant, notes=notes,
                    reference=reference)
