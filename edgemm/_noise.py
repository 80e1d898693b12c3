"""Library chatter a user cannot act on, silenced where edgemm triggers it; every other warning passes.

- torch's ONNX exporter warns "The axis name: batch will not be used, since it shares the same shape
  constraints with another axis: batch." whenever several inputs share the one dynamic batch
  dimension edgemm gives them (on purpose: every input has the same batch).
- torch's pytree logs "<enum 'KernelPreference'> is an Enum subclass ... register_constant() on
  Enum subclasses is deprecated" when torchao (PT2E int8) is imported: torchao's code, not the user's.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator

ONNX_SHARED_AXIS = r"# The axis name: \w+ will not be used, since it shares the same shape constraints"
PYTREE_ENUM = "is an Enum subclass and is now natively supported by torch.compile"


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_torchao_import() -> None:
    """Drops torch's pytree notice about torchao's enum registrations (idempotent)."""
    logger = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _DropMessage) and f.text == PYTREE_ENUM for f in logger.filters):
        logger.addFilter(_DropMessage(PYTREE_ENUM))


@contextlib.contextmanager
def quiet_onnx_export() -> Iterator[None]:
    """Around ``torch.onnx.export``: drops the shared-batch-axis notice, keeps every other warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=ONNX_SHARED_AXIS, category=UserWarning)
        yield
