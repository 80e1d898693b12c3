"""int8 quantization through PyTorch's PT2E flow (now in torchao): QAT and PTQ.

``torch.export`` captures the float model; ``X86InductorQuantizer`` annotates it (per-channel
symmetric weights, per-tensor affine activations); QAT inserts fake-quant observers that train
with the model (BatchNorm folded into the preceding conv); ``convert_pt2e`` produces the
quantize/dequantize graph that ONNX export turns into QDQ (run as int8 by onnxruntime and OpenVINO).
The log-mel frontend is left in float (its STFT is slow and lossy in int8).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from edgemm.atomic import atomic_path
from edgemm.models.av import example_inputs
from edgemm.vocab import FRONTEND_MODULE

FLOAT_MODULES = (FRONTEND_MODULE,)


class PT2EModel(nn.Module):
    """Wraps a PT2E graph module so ``train()``/``eval()`` switch its dropout and BatchNorm ops.

    Exported graphs ignore ``module.train()``; torchao's ``move_exported_model_to_train/eval``
    rewrite the ops instead. With this wrapper the usual training and evaluation loops just work.
    """

    def __init__(self, graph: nn.Module, preprocess) -> None:
        super().__init__()
        self.graph = graph
        self.preprocess = preprocess
        self._mode: bool | None = None

    def train(self, mode: bool = True) -> "PT2EModel":
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

        if mode != self._mode:
            (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.graph)
            # Those rewrite the ops but leave the module's flag, which exporters read (and warn on).
            self.graph.training = mode
            self._mode = mode
        self.training = mode
        return self

    def forward(self, image, audio, image_present=None, audio_present=None):
        b = image.shape[0]
        if image_present is None:
            image_present = torch.ones(b, device=image.device)
        if audio_present is None:
            audio_present = torch.ones(b, device=image.device)
        return self.graph(image, audio, image_present, audio_present)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return example_inputs(self.preprocess, batch)


def _quantizer(is_qat: bool):
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    q = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=is_qat))
    for name in FLOAT_MODULES:
        q.set_module_name_qconfig(name, None)
    return q


def export_for_quantization(model: nn.Module) -> nn.Module:
    """``torch.export`` with a dynamic batch (traced with batch 4: batch-1 traces fix the batch)."""
    model.eval()
    ex = model.example_inputs(4)
    batch = torch.export.Dim("batch", min=1, max=4096)
    ep = torch.export.export(model, ex, dynamic_shapes=tuple({0: batch} for _ in ex))
    return ep.module()


def prepare_qat(model: nn.Module) -> PT2EModel:
    """Inserts trainable fake quantization; train the result, then ``convert``."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    graph = prepare_qat_pt2e(export_for_quantization(model), _quantizer(is_qat=True))
    return PT2EModel(graph, model.preprocess).train()


def prepare_ptq(model: nn.Module) -> PT2EModel:
    """Inserts observers for post-training calibration; feed it data in eval mode, then ``convert``."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    graph = prepare_pt2e(export_for_quantization(model), _quantizer(is_qat=False))
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
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

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


def save_int8(model: PT2EModel, path) -> None:
    """Saves a converted int8 model as a ``torch.export`` program (``.pt2``), written atomically."""
    ex = model.example_inputs(4)
    batch = torch.export.Dim("batch", min=1, max=4096)
    ep = torch.export.export(model.graph, ex, dynamic_shapes=tuple({0: batch} for _ in ex))
    with atomic_path(path) as tmp:  # keeps the .pt2 suffix torch.export.save wants
        torch.export.save(ep, str(tmp))


def load_int8(path, preprocess) -> PT2EModel:
    """Loads a ``model_int8.pt2`` written by ``edgemm compress``.

    The quantize/dequantize ops it uses (``quantized_decomposed``) are registered by torchao's
    PT2E module, so it is imported first; ``torch.export.load`` alone fails on them.

    Args:
        path: The ``.pt2`` file.
        preprocess: The model's ``PreprocessConfig`` (from ``model.pt``), for example inputs.
    """
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed ops)

    return PT2EModel(torch.export.load(str(path)).module(), preprocess).eval()


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
