"""The model registry: ``@register_model`` constructors, ``create_model(name, **kw)``, ``list_models()``."""

from __future__ import annotations

import fnmatch
from typing import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Registers a model constructor under its function name.

    Raises:
        ValueError: If the name is taken.
    """
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def create_model(name: str, **kwargs) -> nn.Module:
    """Builds a registered model; keyword arguments override its defaults.

    The returned model remembers ``name`` and ``kwargs`` (``model.edgemm_spec``) so a checkpoint can
    rebuild it without pickling code.

    Raises:
        ValueError: If ``name`` is not registered (the message lists what is).

    Example:
        >>> model = create_model("test_gated", num_classes=4)
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {list_models()}")
    model = _MODELS[name](**kwargs)
    model.edgemm_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))
