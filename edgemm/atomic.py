"""Files written whole or not at all (torch-free).

Every checkpoint, report, manifest and recording edgemm writes goes through ``atomic_path``: the
data goes to a hidden temporary file beside the target, is flushed to disk, and is renamed over the
target only when writing finished; an error or an interrupt removes the temporary file and leaves
the previous version in place.

    >>> with atomic_path("runs/x/model.pt") as tmp:
    ...     torch.save(state, tmp)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` with the same suffix (writers that pick a format by
    suffix still work); on success it is synced and renamed to ``path``, on error removed."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes a binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
