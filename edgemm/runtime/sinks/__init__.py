"""Where results go: the console (text or JSON lines), a window, a web preview, a video file.

Every sink has ``put(result)`` and ``close()``. Sinks that draw or encode (``display``,
``preview``, ``recorder``) do it on their own thread from a one-slot mailbox, so a slow window or
encoder skips results instead of stalling inference and capture. A lossless sink (the recorder
when the input is a file read as fast as possible) makes ``put`` wait for the slot instead: the
file then holds every result, and inference runs at the encoder's pace.
"""

from __future__ import annotations

import threading
from typing import Any


class ThreadedSink:
    """Base for sinks that work on their own thread; ``handle`` gets the newest result only.

    Args:
        lossless: ``put`` waits until the previous result is taken instead of replacing it.
    """

    name = "sink"

    def __init__(self, lossless: bool = False) -> None:
        self.lossless = lossless
        self._slot: Any = None
        self._cond = threading.Condition()
        self._closed = False
        self.skipped = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name=self.name)
        self._thread.start()

    def put(self, result: Any) -> None:
        with self._cond:
            while self.lossless and self._slot is not None and self._thread.is_alive():
                self._cond.wait(0.1)
            if self._slot is not None:
                self.skipped += 1
            self._slot = result
            self._cond.notify_all()

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._slot is None and not self._closed:
                        self._cond.wait()
                    if self._slot is None and self._closed:
                        break
                    result, self._slot = self._slot, None
                    self._cond.notify_all()  # a lossless put may be waiting for the slot
                self.handle(result)
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self.error = e
        try:  # on this thread too: GUI toolkits want windows destroyed by the thread that made them
            self.finish()
        except BaseException as e:  # noqa: BLE001
            self.error = self.error or e

    def handle(self, result: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name} sink did not finish within 30 s")
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Releases resources after the last ``handle``."""
