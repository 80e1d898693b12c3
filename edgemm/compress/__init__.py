"""Compression: distillation, structured pruning and int8 quantization, driven by a recipe.

Example:
    >>> from edgemm.compress import compress
    >>> report = compress(out="runs/compress")  # doctest: +SKIP
"""

from importlib import import_module

_EXPORTS = {
    "compress": "edgemm.compress.pipeline",
    "Recipe": "edgemm.compress.recipe",
    "StageType": "edgemm.compress.recipe",
    "load_recipe": "edgemm.compress.recipe",
    "parse_recipe": "edgemm.compress.recipe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgemm.compress' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
