"""Shared helpers for config dataclasses: strict keys and str-Enum parsing (torch-free)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping, TypeVar

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
