"""Errors raised for bad input data: each names the file (and CSV row) and what was expected."""

from __future__ import annotations

from pathlib import Path

from edgemm.errors import EdgemmError


class DataError(EdgemmError, ValueError):
    """A data set entry is unusable.

    Attributes:
        path: The file at fault (the CSV for header/row problems, else the media file).
        row: 1-based CSV line number, or None when the problem is not a CSV row.
        reason: What is wrong and what was expected.
    """

    def __init__(self, path: str | Path, reason: str, *, row: int | None = None) -> None:
        self.path = Path(path)
        self.row = row
        self.reason = reason
        where = f"{self.path}" if row is None else f"{self.path}, row {row}"
        super().__init__(f"{where}: {reason}")
