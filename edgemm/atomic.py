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
import functools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from edgemm.errors import EdgemmError

LOCK = ".edgemm.lock"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` with the same suffix (writers that pick a format by
    suffix still work); on success it is synced and renamed to ``path``, on error removed."""
    path = require_parent(path)
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


def require_parent(path: str | Path, what: str | None = None) -> Path:
    """``path``, whose directory must already exist (an output path with a typo must not create
    directories anywhere, as root at the file-system root).

    Raises:
        FileNotFoundError: Naming ``what`` and the missing directory.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{what + ': ' if what else ''}cannot write {path}: directory {path.parent} "
                                "does not exist")
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


class OutputError(EdgemmError, OSError):
    """An output directory that cannot be created there (the message names the flag and path)."""


class OutputLocked(EdgemmError, RuntimeError):
    """Another live edgemm run writes to the same output directory."""


def _read_lock(path: Path) -> dict:
    try:
        held = json.loads(path.read_text())
        return held if isinstance(held, dict) and isinstance(held.get("pid"), int) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def output_lock(directory: str | Path, command: str, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Holds ``directory/.edgemm.lock`` (this process's PID, host and command) while a run writes there.

    A second run on the same directory is an error naming the first; a lock whose process is gone
    (killed) is taken over with a notice. A directory this call created is removed again if the run
    left nothing in it.

    Raises:
        OutputLocked: A live process on this host holds the lock.
    """
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder is expected, a read-only place
        raise OutputError(f"--out {directory}: cannot create the directory ({e.strerror})") from None
    path, host = directory / LOCK, socket.gethostname()
    log = log or (lambda s: print(s, file=sys.stderr))
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            held = _read_lock(path)
            if held and (held.get("host") != host or _alive(held["pid"])):
                raise OutputLocked(f"{directory} is in use by another edgemm run (PID {held['pid']} on "
                                   f"{held.get('host')}: {held.get('command')}); wait for it to finish or choose "
                                   f"another --out (a lock left by a crash: remove {path})") from None
            log(f"{directory}: taking over the lock of an edgemm run that is gone (PID {held.get('pid')})")
            path.unlink(missing_ok=True)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": host, "command": command}, f)
    try:
        yield path
    finally:
        if _read_lock(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty


def locks_output(command: str):
    """Decorates a function with an ``out=`` argument so it runs under ``output_lock(out)`` (on the
    main process only: under torchrun, the ranks above 0 write nothing)."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, out, **kw):
            if int(os.environ.get("RANK", "0")) != 0:
                return fn(*args, out=out, **kw)
            with output_lock(out, f"edgemm {command} (out={out})"):
                return fn(*args, out=out, **kw)
        return wrapper
    return deco


def scratch_dir(kind: str) -> Path:
    """A new temporary directory ``edgemm-<kind>-<pid>-…`` in the system's temp directory; first removes
    those that processes now gone (killed, SIGKILL) left behind. The caller removes its own."""
    base = Path(tempfile.gettempdir())
    remove_leftovers(base, f"edgemm-{kind}-")
    return Path(tempfile.mkdtemp(prefix=f"edgemm-{kind}-{os.getpid()}-"))


@contextlib.contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """``scratch_dir(kind)``, removed when the block ends."""
    path = scratch_dir(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
