"""Which model code may run: a ``PATH.py:FUNCTION`` or ``module:FUNCTION`` reference runs only when
the user named it, never because a file (a checkpoint, a recipe) stores it.

A checkpoint is data: it loads with ``torch.load(weights_only=True)``. But the model it rebuilds is
named inside it, and a reference there would import and call code chosen by whoever wrote the
file. So a stored reference is refused unless the user named the same reference on the command
line (``--model``, ``--student``, ``--teacher``) or in Python (``create_model``), or opted in to
every reference with ``--trust-model-code`` / ``EDGEMM_TRUST_MODEL_CODE=1`` (the convention of
Hugging Face's ``trust_remote_code``). Registered names are always allowed: their code was
installed, not carried by the file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from edgemm.errors import EdgemmError

ENV = "EDGEMM_TRUST_MODEL_CODE"
_named: set[str] = set()
_trust_all = False


def is_reference(name: str) -> bool:
    """Whether ``name`` is a factory reference (``PATH.py:FUNCTION``, ``module:FUNCTION``) rather than a
    registered name."""
    return isinstance(name, str) and ":" in name and not name.startswith(("hf:", "http:", "https:"))


def canonical(ref: str) -> str:
    """The reference as checkpoints store it: a file reference with an absolute path."""
    target, _, function = ref.rpartition(":")
    if target.endswith(".py"):
        return f"{Path(target).expanduser().resolve()}:{function}"
    return ref


class UntrustedModelCode(EdgemmError, ValueError):
    """A file names model code the user did not ask to run."""


def trust_reference(ref: str) -> None:
    """The user named ``ref``: its code may run when a file names it too.

    Example:
        >>> trust_reference("my_models.py:tiny")  # then load_model("runs/x/best.pt") may rebuild it
    """
    _named.add(canonical(ref))


def trusts_all() -> bool:
    """Whether every stored reference may run (``--trust-model-code`` or ``EDGEMM_TRUST_MODEL_CODE=1``)."""
    return _trust_all or os.environ.get(ENV, "") not in ("", "0")


def check_stored_reference(ref: str, where: str) -> None:
    """Allows a model reference read from a file only if the user named it or opted in.

    Args:
        ref: The stored model name; registered names pass.
        where: The file (and field) it was read from, for the message.

    Raises:
        UntrustedModelCode: Naming the file, the reference and the two ways to allow it.
    """
    if not is_reference(ref) or ref in _named or trusts_all():
        return
    raise UntrustedModelCode(
        f"{where}: its model is code, {ref!r}, which edgemm runs only when you ask: name it on the command line "
        f"(--model / --student / --teacher {ref}) or pass --trust-model-code if you trust where this file came from")


@contextlib.contextmanager
def session(trust_all: bool = False) -> Iterator[None]:
    """One command's trust: what it names and its opt-in, forgotten when it ends."""
    global _trust_all
    saved = set(_named), _trust_all
    _named.clear()
    _trust_all = trust_all
    try:
        yield
    finally:
        _named.clear()
        _named.update(saved[0])
        _trust_all = saved[1]
