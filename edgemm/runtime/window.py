"""A temporal model's input from one stream: K preprocessed frames, ``frame_stride`` apart.

Training cuts frames k-(K-1)s, ..., k-s, k of a clip and, before the clip's first frame, repeats it
(``edgemm.data.video.frame_window``); the window here starts the same way: the stream's first frame
fills every place, then each new frame pushes the oldest out.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameWindow:
    """Keeps the frames a window spans and gives every ``stride``-th of them stacked, oldest first.

    Args:
        frames: K.
        stride: Frames from one window frame to the next.
    """

    def __init__(self, frames: int, stride: int = 1) -> None:
        if frames < 1 or stride < 1:
            raise ValueError(f"frames and stride must be >= 1, got {frames} and {stride}")
        self.frames, self.stride = frames, stride
        self._items: deque[tuple[np.ndarray, ...]] = deque(maxlen=(frames - 1) * stride + 1)

    def push(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Adds one frame's inputs (e.g. image (3, S, S), audio (samples,), two presence flags) and
        returns each stacked over the window: (K, 3, S, S), (K, samples), (K,), (K,)."""
        if not self._items:
            self._items.extend([inputs] * self._items.maxlen)
        else:
            self._items.append(inputs)
        return tuple(np.stack(parts) for parts in zip(*list(self._items)[::self.stride]))

    def reset(self) -> None:
        """Forgets the stream (the next frame fills the window again)."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
