"""The one base of every error a user can cause and fix (torch-free).

Each part of edgemm raises its own subclass (``DataError``, ``BundleError``, ``ExportError``,
``CameraError`` ...), which keeps its built-in base (``ValueError``, ``RuntimeError``) for callers
that catch those. The CLI prints any ``EdgemmError`` as one line, ``edgemm <command>: error: <message>``,
and exits with its ``exit_code``; ``--debug`` (or ``EDGEMM_DEBUG=1``) shows the traceback instead.

Exit codes: 0 success, 1 failure, 2 usage (a bad flag or a missing input), 3 verification failed,
4 a ``bench --fail-under`` threshold missed, 130 interrupted.
"""

from __future__ import annotations


class EdgemmError(Exception):
    """A failure the message explains in full: bad input, a broken file, a missing device or package."""

    exit_code = 1


class UsageError(EdgemmError, ValueError):
    """The command was called wrongly (like argparse's errors: exit 2)."""

    exit_code = 2
