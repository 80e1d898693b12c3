"""Layer shapes as plain data, so a structurally pruned model can be rebuilt from its registry spec.

Pruning changes channel counts, which the registered constructor does not know about. Instead of
pickling modules (torch-pruning's own ``tp.state_dict`` stores each module's ``__dict__``, which
``torch.load(weights_only=True)`` refuses), checkpoints carry ``layer_shapes(model)``: the shape
attributes of every layer. Loading builds the registered model, applies the shapes, then loads
the weights.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

_SHAPE_ATTRS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (nn.modules.conv._ConvNd, ("in_channels", "out_channels", "groups")),
    (nn.Linear, ("in_features", "out_features")),
    (nn.modules.batchnorm._BatchNorm, ("num_features",)),
    (nn.LayerNorm, ("normalized_shape",)),
)


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The shape attributes of every conv, linear and norm layer, keyed by module name."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        for cls, attrs in _SHAPE_ATTRS:
            if isinstance(m, cls):
                out[name] = {a: list(v) if isinstance(v, tuple) else v for a, v in ((a, getattr(m, a)) for a in attrs)}
    return out


def apply_layer_shapes(model: nn.Module, shapes: Mapping[str, Mapping[str, Any]], state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Resizes a freshly built model's layers and tensors to match ``shapes`` and ``state_dict``.

    Every parameter and buffer is replaced by an empty tensor of the saved shape (so the following
    ``load_state_dict`` fills it), and layer attributes such as ``out_channels`` are set.

    Raises:
        ValueError: If ``shapes`` names a layer the model does not have.
    """
    modules = dict(model.named_modules())
    for name, attrs in shapes.items():
        if name not in modules:
            raise ValueError(f"layer {name!r} of the saved shapes does not exist in {type(model).__name__}")
        for a, v in attrs.items():
            setattr(modules[name], a, tuple(v) if isinstance(v, list) else v)
    for key, saved in state_dict.items():
        owner_name, _, attr = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            continue
        current = getattr(owner, attr, None)
        if isinstance(current, torch.Tensor) and current.shape != saved.shape:
            empty = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
            if isinstance(current, nn.Parameter):
                setattr(owner, attr, nn.Parameter(empty, requires_grad=current.requires_grad))
            else:
                owner.register_buffer(attr, empty)
    return model
