"""The annotated picture shared by the window, the web preview and the recorder (OpenCV drawing)."""

from __future__ import annotations

import collections
import time

import numpy as np

from edgemm._cv2 import import_cv2

WIDTH = 640
PANEL = 200  # height of the info panel under the frame
EVENT_BGR = (40, 40, 210)  # the badge of an event in progress: red


class FpsMeter:
    """Results per second over the last ~2 s."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=64)

    def tick(self) -> float:
        now = time.perf_counter()
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > 2.0:
            self._times.popleft()
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def render(result, fps: float = 0.0, top: int = 3, width: int = WIDTH) -> np.ndarray:
    """Draws ``result`` as a BGR uint8 image: the frame, the top labels as bars, an audio level
    meter, which modalities are live, fps and per-stage latency."""
    cv2 = import_cv2()
    if result.frame is not None:
        frame = result.frame
        h = int(round(frame.shape[0] * width / frame.shape[1]))
        view = cv2.cvtColor(cv2.resize(frame, (width, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    else:
        h = width * 3 // 4
        view = np.full((h, width, 3), 32, np.uint8)
        cv2.putText(view, "no camera", (width // 2 - 80, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (160, 160, 160), 2)
    panel = np.full((PANEL, width, 3), 24, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    ranked = sorted(result.scores.items(), key=lambda kv: -kv[1])[:top]
    for i, (label, score) in enumerate(ranked):
        y = 12 + i * 34
        color = (80, 200, 80) if i == 0 and result.label is not None else (160, 160, 160)
        cv2.rectangle(panel, (170, y), (170 + int(score * (width - 250)), y + 24), color, -1)
        cv2.putText(panel, label[:16], (8, y + 19), font, 0.6, (235, 235, 235), 1, cv2.LINE_AA)
        cv2.putText(panel, f"{score:.2f}", (width - 70, y + 19), font, 0.6, (235, 235, 235), 1, cv2.LINE_AA)
    y = 12 + top * 34 + 6
    # Audio level meter: -80..0 dBFS.
    db = -80.0 if result.audio_dbfs is None else max(min(result.audio_dbfs, 0.0), -80.0)
    cv2.putText(panel, "audio", (8, y + 14), font, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.rectangle(panel, (70, y), (70 + 200, y + 16), (70, 70, 70), 1)
    cv2.rectangle(panel, (70, y), (70 + int((db + 80) / 80 * 200), y + 16), (60, 170, 230), -1)
    cv2.putText(panel, f"{db:.0f} dBFS", (280, y + 14), font, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
    live = [("CAM", result.image_present), ("MIC", result.audio_present)]
    for i, (name, on) in enumerate(live):
        x = width - 150 + i * 75
        cv2.rectangle(panel, (x, y - 2), (x + 64, y + 20), (60, 180, 60) if on else (60, 60, 180), -1)
        cv2.putText(panel, f"{name} {'on' if on else 'off'}", (x + 4, y + 14), font, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    st = result.stages
    text = (f"{fps:4.1f} fps  e2e {result.latency_ms:.1f} ms  pre {st.get('preprocess', 0):.1f}  "
            f"inf {st.get('inference', 0):.1f}  wait {st.get('wait', 0):.1f}  t={result.t:.2f}s")
    cv2.putText(panel, text, (8, PANEL - 10), font, 0.48, (200, 200, 200), 1, cv2.LINE_AA)
    for i, label in enumerate(getattr(result, "events", ())):  # events in progress (--events), top right
        x, y = width - 210, 8 + i * 30
        cv2.rectangle(view, (x, y), (width - 8, y + 24), EVENT_BGR, -1)
        cv2.putText(view, f"EVENT {label[:14]}", (x + 6, y + 17), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    if result.label is not None:
        cv2.putText(view, f"{result.label} {result.score:.2f}", (10, 32), font, 0.9, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(view, f"{result.label} {result.score:.2f}", (10, 32), font, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return np.vstack([view, panel])
