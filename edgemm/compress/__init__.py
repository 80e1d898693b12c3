"""Compression: distillation, structured pruning and int8 quantization, driven by a recipe.

Example:
    >>> from edgemm.compress import compress
    >>> report = compress(out="runs/compress")  # doctest: +SKIP
"""

from edgemm._lazy import lazy_getattr

_EXPORTS = {
    "compress": "edgemm.compress.pipeline",
    "Recipe": "edgemm.compress.recipe",
    "StageType": "edgemm.compress.recipe",
    "load_recipe": "edgemm.compress.recipe",
    "parse_recipe": "edgemm.compress.recipe",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("edgemm.compress", _EXPORTS)
