"""A camera through OpenCV ``VideoCapture``: an index, a device path, a file, a URL or a GStreamer pipeline.

URLs (HTTP MJPEG, UDP, RTSP) go through OpenCV's FFmpeg backend; a string containing ``!`` is a
GStreamer pipeline (the Jetson CSI camera: ``JETSON_CSI``), which needs an OpenCV built with
GStreamer — the pip wheels are not, and the error says so. A live camera that drops is reopened
with exponential back-off; frames are stamped with ``time.perf_counter()``, the clock the
microphone uses too.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Iterator

import numpy as np

from edgemm._cv2 import import_cv2
from edgemm.errors import EdgemmError
from edgemm.runtime.sync import Frame

# The Jetson CSI camera (IMX219/IMX477) through nvarguscamerasrc, as BGR frames for OpenCV.
JETSON_CSI = ("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=1280, height=720, framerate=30/1 ! "
              "nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
              "appsink drop=true max-buffers=1")


class CameraError(EdgemmError, RuntimeError):
    """A camera that cannot be opened (or reopened); the message names it."""


def _is_file(src: str) -> bool:
    from pathlib import Path

    return "://" not in src and "!" not in src and not src.startswith("/dev/") and Path(src).is_file()


class CameraSource:
    """Frames from a camera or stream.

    Args:
        src: Camera index (``0``), device path (``/dev/video0``), file, URL, or GStreamer pipeline.
        width: Requested capture width (cameras only; the driver may pick another).
        height: Requested capture height.
        fps: Requested frame rate.
        reconnect: Reopen a live source that stops delivering frames.
        max_backoff: Longest wait between reopen attempts (s); waits double from 0.25 s.
        max_reconnects: Give up after this many failed reopen attempts in a row (``None``: never).
    """

    live = True
    streams = frozenset({"video"})

    def __init__(self, src: int | str, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, reconnect: bool = True, max_backoff: float = 8.0,
                 max_reconnects: int | None = 10) -> None:
        self.src = int(src) if isinstance(src, str) and src.isdigit() else src
        self.size, self.fps = (width, height), fps
        self.is_file = isinstance(self.src, str) and _is_file(self.src)
        self.live = not self.is_file
        self.reconnect, self.max_backoff, self.max_reconnects = reconnect and self.live, max_backoff, max_reconnects
        self._stop = threading.Event()
        self._cap = None
        self.reconnects = 0
        self.frames = 0

    def _open(self):
        cv2 = import_cv2()
        if isinstance(self.src, str) and "!" in self.src:
            if not re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()):
                raise CameraError("this OpenCV has no GStreamer support, so a pipeline string cannot be "
                                  "opened (the pip wheels lack it; on Jetson use the system OpenCV: "
                                  "apt install python3-opencv)")
            cap = cv2.VideoCapture(self.src, cv2.CAP_GSTREAMER)
        elif isinstance(self.src, str) and "://" in self.src:
            cap = cv2.VideoCapture(self.src, cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(self.src)
        if self.size[0]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        if self.size[1]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def __enter__(self) -> "CameraSource":
        self._cap = self._open()
        if self._cap is None:
            raise CameraError(f"camera {self.src!r}: cannot open (no such device, file or stream, or it is busy)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def stop(self) -> None:
        self._stop.set()

    def _reopen(self) -> bool:
        """Reopens with back-off; False when stopped or out of attempts."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        wait, failures = 0.25, 0
        while not self._stop.wait(wait):
            self._cap = self._open()
            if self._cap is not None:
                self.reconnects += 1
                return True
            failures += 1
            if self.max_reconnects is not None and failures >= self.max_reconnects:
                raise CameraError(f"camera {self.src!r}: lost and not back after {failures} attempts")
            wait = min(wait * 2, self.max_backoff)
        return False

    def packets(self) -> Iterator[Frame]:
        cv2 = import_cv2()
        last_t = None
        while not self._stop.is_set():
            ok, bgr = self._cap.read() if self._cap is not None else (False, None)
            if not ok or bgr is None:
                if self.reconnect and self._reopen():
                    continue
                return
            if self.is_file:
                t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1e3
            else:
                t = time.perf_counter()
            if last_t is not None and t <= last_t:
                t = np.nextafter(last_t, np.inf)  # two frames within the clock's resolution
            last_t = t
            self.frames += 1
            yield Frame(float(t), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


SOURCE = CameraSource
