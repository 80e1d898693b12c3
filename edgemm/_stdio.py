"""Keeping stdout for results: library chatter redirected to stderr at the file-descriptor level."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While a ``--json`` command runs, everything written to stdout goes to stderr: Python prints
    and the native libraries' own output (converters write to file descriptor 1)."""
    sys.stdout.flush()
    saved_obj = sys.stdout
    try:
        saved_fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptor 1 (an embedded interpreter): Python output only
        saved_fd = None
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = saved_obj
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
