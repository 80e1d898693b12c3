"""Converter failures turned into one line that names the operator and the layer."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Iterator

from edgemm.errors import EdgemmError

if TYPE_CHECKING:
    from torch import nn

_OP = re.compile(r"(aten[.:]{1,2}[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)")


class ExportError(EdgemmError, RuntimeError):
    """An export that could not be produced; the message names the target, op and layer when known."""


def layers_using(model: "nn.Module", example: tuple, op: str) -> list[str]:
    """Module paths whose ``torch.export`` graph calls ``op`` (e.g. ``aten.stft``)."""
    import torch

    name = op.replace("::", ".").split(".")[1]
    try:
        ep = torch.export.export(model, example)
    except Exception:  # noqa: BLE001 - locating is best effort; the original error is what matters
        return []
    found = []
    for node in ep.graph.nodes:
        if node.op == "call_function" and name in str(node.target):
            stack = node.meta.get("nn_module_stack") or {}
            path = list(stack.values())[-1][0] if stack else "<top level>"
            if path not in found:
                found.append(path)
    return found


@contextlib.contextmanager
def converting(target: str, model: "nn.Module", example: tuple) -> Iterator[None]:
    """Re-raises a converter exception as ``ExportError`` naming the unsupported op and its layers."""
    try:
        yield
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - converters raise anything; we translate it once, here
        text = f"{e.__class__.__name__}: {e}"
        ops = list(dict.fromkeys(_OP.findall(text)))
        if ops:
            where = layers_using(model, example, ops[0])
            layer = f" in layer(s) {', '.join(where)}" if where else ""
            raise ExportError(f"{target}: cannot convert operator {ops[0]}{layer} "
                              f"({text.splitlines()[0][:300]})") from e
        raise ExportError(f"{target}: conversion failed: {text.splitlines()[0][:500]}") from e
