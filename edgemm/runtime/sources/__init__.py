"""Where frames and audio come from: one source per file, all the same small protocol.

A source is a context manager; ``packets()`` yields ``Frame`` and ``AudioChunk`` objects (see
``edgemm.runtime.sync``) in time order until the media ends or ``stop()`` is called, and
``streams`` says which of ``"video"`` / ``"audio"`` it provides. Live sources stamp packets with
``time.perf_counter()`` so a camera and a microphone share one clock; file sources use media time.

    >>> with open_source("video", "clip.mp4", sample_rate=16000) as src:
    ...     for packet in src.packets():
    ...         ...
"""

from __future__ import annotations

import enum
import importlib
from typing import Any, Iterator, Protocol

from edgemm.runtime.sync import AudioChunk, Frame


class SourceKind(str, enum.Enum):
    CAMERA = "camera"
    MICROPHONE = "microphone"
    VIDEO = "video"


_MODULES = {SourceKind.CAMERA: "camera", SourceKind.MICROPHONE: "microphone", SourceKind.VIDEO: "video_file"}


class Source(Protocol):
    streams: frozenset[str]
    live: bool

    def __enter__(self) -> "Source": ...

    def __exit__(self, *exc: object) -> None: ...

    def packets(self) -> Iterator[Frame | AudioChunk]: ...

    def stop(self) -> None: ...


def open_source(kind: str | SourceKind, *args: Any, **kwargs: Any) -> Source:
    """Builds the source of one kind (its module is imported only now: OpenCV, sounddevice, PyAV)."""
    from edgemm.config import parse_enum

    kind = parse_enum(SourceKind, kind, "source")
    module = importlib.import_module(f"edgemm.runtime.sources.{_MODULES[kind]}")
    return module.SOURCE(*args, **kwargs)
