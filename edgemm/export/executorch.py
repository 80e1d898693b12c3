"""ExecuTorch: a ``.pte`` program lowered to XNNPACK, fp32 or int8.

``torch.export`` captures the model with a batch of 1, ``to_edge_transform_and_lower`` hands every
subgraph XNNPACK supports to the XNNPACK delegate, and ``to_executorch`` writes the program. int8
is PT2E with ExecuTorch's ``XNNPACKQuantizer`` (int8 weights per channel, int8 activations), calibrated
post-training on the float model, so the int8 ops lower into XNNPACK's int8 kernels; the log-mel
frontend stays float. The QAT program of ``edgemm compress`` is annotated by the x86 quantizer
(uint8 activations), which the XNNPACK delegate does not take: from a QAT checkpoint, int8 is
calibrated from the QAT-trained float weights and the manifest says so.

Verification and the runtime backend use ExecuTorch's Python runtime, which links libtorch; on a
device without torch, ExecuTorch's C++ runtime runs the same ``.pte``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgemm.export.errors import converting
from edgemm.export.formats import Precision
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


_LAYER_OPS = {torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.linear.default,
              torch.ops.aten.matmul.default, torch.ops.aten.addmm.default, torch.ops.aten.mm.default}


def quantizer(keep_float: tuple[str, ...] = ()):
    """``XNNPACKQuantizer`` (per-channel int8 weights, int8 activations) for every op but the
    frontend's and ``keep_float``'s (module paths): it cannot be told to skip a module
    (``set_module_name(name, None)`` is refused, and naming the modules to quantize instead left the
    image encoder float), so its annotations on their nodes are removed after it has annotated the
    graph."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class KeepFrontendFloat(XNNPACKQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            for node in _float_nodes(model.graph, (FRONTEND_MODULE,), input_paths=False):
                node.meta.pop("quantization_annotation", None)
            for node in _float_nodes(model.graph, keep_float, input_paths=True):
                node.meta.pop("quantization_annotation", None)
            return model

    return KeepFrontendFloat().set_global(get_symmetric_quantization_config(is_per_channel=True))


def _within(node, modules: tuple[str, ...]) -> bool:
    """Whether an FX node comes from one of ``modules`` (module paths) or a module inside one."""
    stack = node.meta.get("nn_module_stack") or {}
    return any(path == m or path.startswith(m + ".") for path, _ in stack.values() for m in modules)


def _float_nodes(graph, modules: tuple[str, ...], *, input_paths: bool) -> list:
    """The FX nodes of ``modules`` and, with ``input_paths``, the ops around their layers as
    ``edgemm.export.onnx.float_nodes`` keeps them: every op back to the previous layer, every op on
    to the next layers, and those layers (a quantized layer quantizes its input)."""
    if not modules:
        return []
    nodes = [n for n in graph.nodes if _within(n, modules)]
    if not input_paths:
        return nodes
    seen = set(nodes)
    for stack, step, take_layer in (([a for n in nodes for a in n.all_input_nodes], lambda n: n.all_input_nodes, False),
                                    ([u for n in nodes for u in n.users], lambda n: list(n.users), True)):
        while stack:
            n = stack.pop()
            if n in seen or n.op != "call_function":
                continue
            seen.add(n)
            if n.target in _LAYER_OPS:
                if take_layer:
                    nodes.append(n)
                continue
            nodes.append(n)
            stack += step(n)
    return nodes


@torch.no_grad()
def ptq_int8(model: nn.Module, example: tuple[torch.Tensor, ...], calibration: Samples,
             keep_float: tuple[str, ...] = ()) -> nn.Module:
    """The PT2E int8 model of ``model``, calibrated one sample at a time on ``calibration``."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer(keep_float))
    for feed in calibration.feeds(1):
        prepared(*(torch.from_numpy(feed[name]) for name in INPUT_NAMES))
    return convert_pt2e(prepared)


def export(ctx: ExportContext, staging: Path) -> Artifact:
    model = ctx.source.model.eval()
    example = tuple(x[:1] for x in model.example_inputs(2))
    path = staging / "model.pte"
    quant, notes, module = None, [], model
    if ctx.precision is Precision.INT8:
        ctx.log(f"executorch: XNNPACKQuantizer int8 calibration on {len(ctx.calibration)} samples")
        module = ptq_int8(model, example, ctx.calibration, ctx.keep_float)
        quant = {"method": "ptq", "tool": "torchao PT2E with XNNPACKQuantizer (per-channel int8 weights, int8 "
                 "activations) -> XNNPACK delegate",
                 "calibration": {"samples": len(ctx.calibration), "data": ctx.calibration.description},
                 "float_modules": [FRONTEND_MODULE, *ctx.keep_float], "io": "float32"}
        if ctx.source.int8 is not None:
            notes.append("the QAT program uses the x86 quantizer (uint8 activations), which XNNPACK does not take: "
                         "int8 was calibrated post-training from the QAT-trained float weights")
    with converting("executorch", model, example):
        path.write_bytes(lower(module, example))
    return Artifact(files={"model": path.name}, tensors=dict(TENSORS), batch=1, quantization=quant, notes=notes)
