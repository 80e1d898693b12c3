"""An int8 program: what ``edgemm compress`` writes and ``edgemm export`` reads.

The PT2E wrapper that switches an exported graph between training and evaluation, the two
quantizers' settings (``Int8Scheme``: x86 for ONNX/OpenVINO, XNNPACK for ExecuTorch), the float
region kept around layers int8 cannot hold (on any graph: FX, ONNX, TFLite), and the ``.pt2``
file. It sits below both ``compress`` (which prepares, trains and converts) and ``export`` (which
lowers the result), so neither imports the other.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from edgemm._noise import quiet_torchao_import
from edgemm.atomic import atomic_path
from edgemm.models.av import example_inputs
from edgemm.models.temporal import window_flags
from edgemm.vocab import FRONTEND_MODULE, Int8Scheme

quiet_torchao_import()  # torchao, imported by the functions below, registers enums torch now warns about

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
        lead = image.shape[:-3]  # (B,), or a temporal model's (B, K): per-sample flags hold for the whole window
        return self.graph(image, audio, _flags(image_present, lead, image.device), _flags(audio_present, lead, image.device))

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return example_inputs(self.preprocess, batch)


def _flags(flags: torch.Tensor | None, lead: torch.Size, device) -> torch.Tensor:
    """Presence flags shaped ``lead``: all live when None (``window_flags`` otherwise)."""
    return torch.ones(lead, device=device) if flags is None else window_flags(flags, lead)


def convert_pt2e(graph: nn.Module) -> nn.Module:
    """torchao's ``convert_pt2e`` (observers and fake quantization become quantize/dequantize ops),
    without the conv-BatchNorm folding work that cannot apply to ``graph``.

    Whenever a graph holds any BatchNorm (ours: the audio encoder's, over mel bins), torchao traces
    12 conv-BN patterns with ``torch.export`` for each of four conv kinds (conv1d, conv2d,
    conv_transpose1d/2d) to fold QAT conv-BN pairs: 20-25 s a conversion on one core, whatever the
    graph (upstream skips only graphs without BatchNorm, pytorch/pytorch#116440). Those pairs exist
    only in QAT graphs (post-training preparation folds BatchNorm into its conv), and a pattern can
    only match a conv kind the graph has; the folds that cannot match are skipped, the rest run as
    torchao runs them.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e as convert

    with _folds_that_can_match(graph):
        return convert(graph)


_CONV_KINDS = {"conv1d": "aten.conv1d", "conv2d": "aten.conv2d", "conv_transpose1d": "aten.conv_transpose1d",
               "conv_transpose2d": "aten.conv_transpose2d"}


@contextlib.contextmanager
def _folds_that_can_match(graph: nn.Module) -> Iterator[None]:
    from torchao.quantization.pt2e import qat_utils
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

    qat = any(isinstance(m, FakeQuantizeBase) for m in graph.modules())
    present = {str(n.target).rsplit(".", 1)[0] for n in graph.graph.nodes if n.op == "call_function"}
    fold = qat_utils._fold_conv_bn_qat_helper

    def only_if_present(m, conv_fn, example_inputs, is_cuda):
        if not qat or _CONV_KINDS.get(conv_fn.__name__, "") not in present:
            return m
        return fold(m, conv_fn, example_inputs, is_cuda)

    qat_utils._fold_conv_bn_qat_helper = only_if_present
    try:
        yield
    finally:
        qat_utils._fold_conv_bn_qat_helper = fold


def _x86_quantizer(is_qat: bool):
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    q = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=is_qat))
    for name in FLOAT_MODULES:
        q.set_module_name_qconfig(name, None)
    return q


def xnnpack_quantizer(is_qat: bool = False, keep_float: tuple[str, ...] = ()):
    """ExecuTorch's ``XNNPACKQuantizer`` (per-channel int8 weights, int8 activations) for every op
    but the frontend's and ``keep_float``'s (module paths, kept float as
    ``edgemm.export.onnx.float_nodes`` keeps them): it cannot be told to skip a module
    (``set_module_name(name, None)`` is refused, and naming the modules to quantize instead left the
    image encoder float), so its annotations on those nodes are removed after it has annotated."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class KeepFloat(XNNPACKQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            for node in _float_nodes(model.graph, FLOAT_MODULES, around=False) + _float_nodes(model.graph, keep_float):
                node.meta.pop("quantization_annotation", None)
            return model

    return KeepFloat().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat))


def quantizer(is_qat: bool, scheme: Int8Scheme):
    """The quantizer of ``scheme``, for QAT or for calibration."""
    return xnnpack_quantizer(is_qat) if scheme is Int8Scheme.XNNPACK else _x86_quantizer(is_qat)


_LAYER_OPS = {torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.linear.default,
              torch.ops.aten.matmul.default, torch.ops.aten.addmm.default, torch.ops.aten.mm.default}


def _within(node, modules: tuple[str, ...]) -> bool:
    """Whether an FX node comes from one of ``modules`` (module paths) or a module inside one."""
    stack = node.meta.get("nn_module_stack") or {}
    return any(path == m or path.startswith(m + ".") for path, _ in stack.values() for m in modules)


def float_region(seeds: Iterable, inputs: Callable, outputs: Callable, is_layer: Callable) -> list:
    """The ops that keep layers in float, on any graph: the ``seeds`` (the layers' own ops), every op
    between them and the layers before them, every op on to the layers they feed, and those layers.

    A quantized layer quantizes its inputs, so a layer whose output int8 cannot hold (one outlier
    channel sets a range that rounds the others to zero) stays broken until the layers it feeds take
    float input too; a layer kept float takes float input for the same reason.

    Args:
        seeds: The ops of the layers to keep float (hashable handles: FX nodes, indices).
        inputs: ``inputs(op)``: the ops feeding ``op`` (None for graph inputs and constants).
        outputs: ``outputs(op)``: the ops ``op`` feeds.
        is_layer: Whether an op is a layer (convolution, linear, matrix product).
    """
    seeds = list(dict.fromkeys(seeds))
    keep, seen = list(seeds), set(seeds)
    for step, take_layer in ((inputs, False), (outputs, True)):
        stack = [n for s in seeds for n in step(s)]
        while stack:
            n = stack.pop()
            if n is None or n in seen:
                continue
            seen.add(n)
            if is_layer(n):
                if take_layer:
                    keep.append(n)
                continue
            keep.append(n)
            stack += step(n)
    return keep


def _float_nodes(graph, modules: tuple[str, ...], *, around: bool = True) -> list:
    """The FX nodes of ``modules`` and, with ``around``, the ``float_region`` around their layers."""
    if not modules:
        return []
    nodes = [n for n in graph.nodes if _within(n, modules)]
    if not around:
        return nodes
    return float_region(nodes, lambda n: [a for a in n.all_input_nodes if a.op == "call_function"],
                        lambda n: [u for u in n.users if u.op == "call_function"], lambda n: n.target in _LAYER_OPS)


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
