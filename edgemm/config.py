"""Shared helpers for config dataclasses: strict keys, field types and str-Enum parsing (torch-free)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from typing import Any, Callable, Mapping, TypeVar

E = TypeVar("E", bound=enum.Enum)


def parse_enum(enum_cls: type[E], value: Any, where: str) -> E:
    """Parses a str-Enum value; anything else is a ``ValueError`` listing the valid values."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not one of {[m.value for m in enum_cls]}") from None


def check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    """Rejects keys that are not fields of the dataclass ``cls``, listing the valid ones."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {valid}")


def _kind(hint: Any) -> tuple[str, Callable[[Any], bool]] | None:
    """What a field's annotation admits from YAML/JSON: a description and a test (None: not checked)."""
    if hint is bool:
        return "true or false", lambda v: isinstance(v, bool)
    if hint is int:
        return "a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return "a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if hint is str:
        return "a string", lambda v: isinstance(v, str)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return f"one of {[m.value for m in hint]}", lambda v: isinstance(v, (hint, str))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_kind(a) for a in args if a is not type(None)]
        if any(k is None for k in kinds):
            return None
        allows_none = type(None) in args
        text = " or ".join(k[0] for k in kinds) + (" or null" if allows_none else "")
        return text, lambda v: (v is None and allows_none) or any(test(v) for _, test in kinds)
    if origin in (tuple, list) and args:
        inner = _kind(args[0])
        if inner is None:
            return None
        return f"a list, each item {inner[0]}", lambda v: isinstance(v, (list, tuple)) and all(inner[1](x) for x in v)
    return None


@functools.lru_cache(maxsize=None)
def _field_kinds(cls: type) -> dict[str, tuple[str, Callable[[Any], bool]]]:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved is not checked
        return {}
    kinds = {f.name: _kind(hints.get(f.name)) for f in dataclasses.fields(cls)}
    return {k: v for k, v in kinds.items() if v is not None}


def check_types(obj: Any, where: str) -> None:
    """Checks every field of the dataclass instance ``obj`` against its annotation.

    Booleans must be booleans (the YAML string ``"false"`` is not), whole numbers whole, numbers
    finite; enums take their values as strings. Fields with richer types are left to the class.

    Raises:
        ValueError: Naming ``where.field``, what was expected and what was given.
    """
    for name, (text, test) in _field_kinds(type(obj)).items():
        value = getattr(obj, name)
        if not test(value):
            raise ValueError(f"{where}.{name}: expected {text}, got {value!r}")
