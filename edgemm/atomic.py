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
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` with the same suffix (writers that pick a format by
    suffix still work); on success it is synced and renamed to ``path``, on error removed."""
    path = Path(path)
    remove_leftovers(path.parent, f".{path.name}.")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".part{path.suffix}",
                                    dir=path.parent)
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


def require_parent(path: str | Path, what: str) -> Path:
    """``path``, whose directory must already exist (an output path with a typo must not create
    directories anywhere, as root at the file-system root).

    Raises:
        FileNotFoundError: Naming ``what`` and the missing directory.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{what}: cannot write {path}: directory {path.parent} does not exist")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(directory: Path, prefix: str) -> list[Path]:
    """Removes what killed runs left in ``directory``: entries named ``<prefix><pid>.…`` or
    ``<prefix><pid>-…`` whose process no longer exists (a live writer's files are left alone).

    Returns:
        The paths removed.
    """
    pattern = re.compile(re.escape(prefix) + r"(\d+)(?:[.-]|$)")
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        m = pattern.match(entry.name)
        if m is None or _alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


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
