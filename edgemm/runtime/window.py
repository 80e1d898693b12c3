"""The last K preprocessed frames of one stream: a temporal model's input (``preprocess.frames`` = K).

Training cuts K consecutive frames of a clip and, before the clip's first frame, repeats it
(``edgemm.data.video.frame_window``); the window here starts the same way: its first frame fills
all K places, then each new frame pushes the oldest out.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameWindow:
    """Keeps the newest ``frames`` inputs of one stream and gives them stacked, oldest first.

    Args:
        frames: K.
    """

    def __init__(self, frames: int) -> None:
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.frames = frames
        self._items: deque[tuple[np.ndarray, ...]] = deque(maxlen=frames)

    def push(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Adds one frame's inputs (e.g. image (3, S, S), audio (samples,), two presence flags) and
        returns each stacked over the window: (K, 3, S, S), (K, samples), (K,), (K,)."""
        if not self._items:
            self._items.extend([inputs] * self.frames)
        else:
            self._items.append(inputs)
        return tuple(np.stack(parts) for parts in zip(*self._items))

    def reset(self) -> None:
        """Forgets the stream (the next frame fills the window again)."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
