"""The model registry: ``@register_model`` constructors, ``create_model(name, **kw)``, ``list_models()``.

Installed packages add models through the ``edgemm.models`` entry-point group.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from edgemm.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model", group="edgemm.models")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Registers a model constructor under its function name.

    Raises:
        ValueError: If the name is taken.
    """
    return MODELS.register(fn.__name__, fn)


def create_model(name: str, **kwargs) -> nn.Module:
    """Builds a registered model; keyword arguments override its defaults.

    The returned model remembers ``name`` and ``kwargs`` (``model.edgemm_spec``) so a checkpoint can
    rebuild it without pickling code.

    Raises:
        ValueError: If ``name`` is not registered (the message lists what is).

    Example:
        >>> model = create_model("test_gated", num_classes=4)
    """
    from edgemm.models.contract import canonical, create_from_reference, is_reference
    from edgemm.trust import trust_reference

    if is_reference(name) and name not in MODELS:
        name = canonical(name)
        trust_reference(name)  # named by the caller (a file's stored names go through load_model's check)
        model = create_from_reference(name, **kwargs)
    else:
        model = MODELS.get(name)(**kwargs)
    model.edgemm_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


def check_model_name(name: str, where: str) -> None:
    """Resolves a model name or factory reference without building it (before any training starts).

    Raises:
        ValueError: Naming ``where``: not registered, or a reference whose file or function is missing.
    """
    from edgemm.models.contract import is_reference, resolve_factory

    try:
        if is_reference(name) and name not in MODELS:
            resolve_factory(name)
        else:
            MODELS.get(name)
    except (ValueError, KeyError, FileNotFoundError, ImportError, AttributeError) as e:
        raise ValueError(f"{where}: {e}") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return MODELS.names(pattern)
