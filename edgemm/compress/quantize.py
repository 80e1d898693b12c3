"""int8 quantization through PyTorch's PT2E flow (now in torchao): QAT and PTQ.

``torch.export`` captures the float model; a quantizer annotates it (``Int8Scheme``):
``X86InductorQuantizer`` (per-channel symmetric weights, per-tensor affine uint8 activations),
whose program ONNX export turns into QDQ that onnxruntime and OpenVINO run as int8, or ExecuTorch's
``XNNPACKQuantizer`` (per-channel weights, per-tensor int8 activations), whose program lowers
directly into XNNPACK's int8 kernels. QAT inserts fake-quant observers that train with the model
(BatchNorm folded into the preceding conv); ``convert_pt2e`` produces the quantize/dequantize
graph. The log-mel frontend is left in float (its STFT is slow and lossy in int8).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from edgemm.models.int8 import PT2EModel, convert_pt2e, quantizer
from edgemm.vocab import Int8Scheme


def export_for_quantization(model: nn.Module) -> nn.Module:
    """``torch.export`` with a dynamic batch (traced with batch 4: batch-1 traces fix the batch)."""
    model.eval()
    ex = model.example_inputs(4)
    batch = torch.export.Dim("batch", min=1, max=4096)
    ep = torch.export.export(model, ex, dynamic_shapes=tuple({0: batch} for _ in ex))
    return ep.module()


def prepare_qat(model: nn.Module, scheme: Int8Scheme = Int8Scheme.X86) -> PT2EModel:
    """Inserts trainable fake quantization; train the result, then ``convert``."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    graph = prepare_qat_pt2e(export_for_quantization(model), quantizer(True, scheme))
    return PT2EModel(graph, model.preprocess).train()


def prepare_ptq(model: nn.Module, scheme: Int8Scheme = Int8Scheme.X86) -> PT2EModel:
    """Inserts observers for post-training calibration; feed it data in eval mode, then ``convert``."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    graph = prepare_pt2e(export_for_quantization(model), quantizer(False, scheme))
    return PT2EModel(graph, model.preprocess).eval()


@torch.no_grad()
def calibrate(model: PT2EModel, batches: Iterable[dict[str, torch.Tensor]], n_samples: int) -> int:
    """Runs up to ``n_samples`` samples through the observers; returns how many ran."""
    model.eval()
    seen = 0
    for batch in batches:
        take = min(len(batch["label"]), n_samples - seen)
        if take <= 0:
            break
        model(batch["image"][:take], batch["audio"][:take])
        seen += take
    return seen


def convert(model: PT2EModel) -> PT2EModel:
    """Turns fake-quant / observers into real quantize-dequantize ops (int8 weights)."""
    model.eval()
    return PT2EModel(convert_pt2e(model.graph), model.preprocess).eval()


def quantized_layers(converted: PT2EModel) -> dict[str, bool]:
    """For every conv and linear op of a converted graph: its module path -> weight is int8.

    Read from the graph itself: an op is quantized when its weight comes through a
    ``dequantize_per_channel`` of an int8 tensor. The module path comes from the op's
    ``nn_module_stack`` (what ``torch.export`` records), e.g. ``fusion.blocks.0.q``.
    """
    gm = converted.graph
    result: dict[str, bool] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or not any(k in str(node.target) for k in ("conv", "linear")):
            continue
        if len(node.args) < 2 or not hasattr(node.args[1], "op"):
            continue
        stack = node.meta.get("nn_module_stack") or {}
        name = list(stack.values())[-1][0] if stack else node.name
        weight = node.args[1]
        is_int8 = False
        if weight.op == "call_function" and "dequantize_per_channel" in str(weight.target):
            src = weight.args[0]
            if src.op == "get_attr":
                is_int8 = _attr(gm, src.target).dtype == torch.int8
        result[name] = is_int8
    return result


def _attr(gm: nn.Module, target: str):
    t = gm
    for part in target.split("."):
        t = getattr(t, part)
    return t


def stored_bytes(converted: PT2EModel) -> int:
    """Bytes of every tensor the converted graph uses (int8 weights 1 B each, the rest as stored)."""
    gm = converted.graph
    targets = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    return sum(t.numel() * t.element_size() for t in (_attr(gm, x) for x in targets) if isinstance(t, torch.Tensor))
