"""A temporal model's input from one stream: K preprocessed frames, ``frame_stride`` apart.

Training cuts a clip's window with ``edgemm.data.preprocess.window_positions``; the window here
picks the stream's frames by the same rule: counted (frames k-(K-1)s, ..., k-s, k), or, when the
model records the frame rate its stride counts at and frames come with timestamps, timed (the frames
nearest to ``frame_stride / frame_rate`` seconds apart, whatever the camera's rate). It starts the
same way too: before the stream's first frame, that frame fills every place.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from edgemm.data.preprocess import PreprocessConfig, window_positions


class FrameWindow:
    """Keeps the frames a window spans and gives the K it picks, stacked oldest first.

    Args:
        frames: K.
        stride: Frames from one window frame to the next (at ``frame_rate``).
        frame_rate: The frame rate the stride counts at (None: frames are counted, timestamps unused).
    """

    def __init__(self, frames: int, stride: int = 1, frame_rate: float | None = None) -> None:
        if frames < 1 or stride < 1:
            raise ValueError(f"frames and stride must be >= 1, got {frames} and {stride}")
        self.frames, self.stride = frames, stride
        self._rule = PreprocessConfig(frames=frames, frame_stride=stride, frame_rate=frame_rate)
        self._times: deque[float] = deque()  # timestamps, when the stream is timed
        self._items: deque[tuple[np.ndarray, ...]] = deque()
        self._timed = False

    def push(self, *inputs: np.ndarray, t: float | None = None) -> tuple[np.ndarray, ...]:
        """Adds one frame's inputs (e.g. image (3, S, S), audio (samples,), two presence flags) and
        returns each stacked over the window: (K, 3, S, S), (K, samples), (K,), (K,).

        Args:
            t: The frame's timestamp in seconds (same clock for the whole stream): a window with a
                frame rate picks its frames by time; without it, by count.
        """
        timed = self._rule.frame_step is not None and t is not None
        if self._items and timed != self._timed:
            raise ValueError("a stream's frames come all with timestamps or all without (reset() starts another)")
        if timed and self._times and t < self._times[-1]:
            raise ValueError(f"frame timestamps must not go back: {t} after {self._times[-1]}")
        self._timed = timed
        self._times.append(float(t) if timed else 0.0)
        self._items.append(inputs)
        times = np.asarray(self._times) if timed else None
        picked = window_positions(times, len(self._items), self._rule)
        out = tuple(np.stack(parts) for parts in zip(*(self._items[i] for i in picked)))
        self._forget(timed)
        return out

    def _forget(self, timed: bool) -> None:
        """Drops frames no later window can pick (the stream's first frame stays until then)."""
        if not timed:
            span = (self.frames - 1) * self.stride + 1
            while len(self._items) > span:
                self._drop()
            return
        oldest_place = self._times[-1] - (self.frames - 1) * self._rule.frame_step
        while len(self._times) >= 2 and self._times[1] <= oldest_place:
            self._drop()

    def _drop(self) -> None:
        self._items.popleft()
        self._times.popleft()

    def reset(self) -> None:
        """Forgets the stream (the next frame fills the window again)."""
        self._items.clear()
        self._times.clear()

    def __len__(self) -> int:
        return len(self._items)
