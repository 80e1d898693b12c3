"""Reading user-facing YAML and JSON with limits (torch-free).

Recipes, device profiles, model sidecars and bundle manifests come from users and from copies of
bundles. They are parsed with safe loaders only (``yaml.SafeLoader``, ``json``) and bounded: the
file's size, the nesting depth, and for YAML the number of values after aliases are expanded (an
"alias bomb" of a few hundred bytes otherwise expands to billions of values). Every failure is a
``ValueError`` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 4 << 20  # 4 MiB: far above any recipe, profile or manifest
MAX_DEPTH = 64
MAX_VALUES = 200_000  # scalars, lists and mappings after alias expansion


def read_text(path: str | Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of a file that must exist, be a regular file and be at most ``max_bytes``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A directory, too large, or not UTF-8 text.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path}: expected a {what} file, found a directory or special file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path}: {size} bytes is too large for a {what} (at most {max_bytes})")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file (expected a {what})") from None


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses documents nested deeper than ``MAX_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Limit(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Limit(Exception):
    pass


def _expanded_values(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` becomes once every alias is copied out (shared nodes counted per use)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_values(k, memo) + _expanded_values(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_values(v, memo) for v in node.value)
    else:
        n = 1
    memo[id(node)] = n
    return n


def load_yaml(text: str, source: str) -> Any:
    """Parses one YAML document safely within the limits.

    Raises:
        ValueError: Invalid YAML, too deep, or too many values after alias expansion, naming ``source``.
    """
    if len(text) > MAX_BYTES:
        raise ValueError(f"{source}: {len(text)} characters is too large (at most {MAX_BYTES})")
    try:
        loader = _BoundedLoader(text)  # its reader refuses control characters (NUL) already
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: not valid YAML ({' '.join(str(e).split())})") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = _expanded_values(node, {})
        if values > MAX_VALUES:
            raise _Limit(f"expands to {values} values, more than {MAX_VALUES} (YAML aliases?)")
        return loader.construct_document(node)
    except _Limit as e:
        raise ValueError(f"{source}: refused: {e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: not valid YAML ({' '.join(str(e).split())})") from None
    finally:
        loader.dispose()


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (iterative: deep input cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def load_json(text: str, source: str) -> Any:
    """Parses JSON within the limits.

    Raises:
        ValueError: Invalid JSON, too large or too deep, naming ``source``.
    """
    if len(text) > MAX_BYTES:
        raise ValueError(f"{source}: {len(text)} characters is too large (at most {MAX_BYTES})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: malformed JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{source}: refused: nested deeper than {MAX_DEPTH} levels") from None
    if _depth(data) > MAX_DEPTH:
        raise ValueError(f"{source}: refused: nested deeper than {MAX_DEPTH} levels")
    return data
