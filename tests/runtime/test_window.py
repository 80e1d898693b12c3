"""The runtime's window of a temporal model's last K frames."""

import numpy as np

from edgemm.runtime.window import FrameWindow


def test_the_first_frame_fills_the_window_then_each_new_one_pushes_the_oldest_out():
    window = FrameWindow(3)
    image, flag = window.push(np.full((2, 2), 1.0), np.float32(1.0))
    assert image.shape == (3, 2, 2) and flag.shape == (3,)
    assert image[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # as training repeats a clip's first frame
    window.push(np.full((2, 2), 2.0), np.float32(1.0))
    image, flag = window.push(np.full((2, 2), 3.0), np.float32(0.0))
    assert image[:, 0, 0].tolist() == [1.0, 2.0, 3.0] and flag.tolist() == [1.0, 1.0, 0.0]  # oldest first
    image, _ = window.push(np.full((2, 2), 4.0), np.float32(1.0))
    assert image[:, 0, 0].tolist() == [2.0, 3.0, 4.0]
    window.reset()
    image, _ = window.push(np.full((2, 2), 5.0), np.float32(1.0))
    assert image[:, 0, 0].tolist() == [5.0, 5.0, 5.0]


def test_a_strided_window_keeps_every_frame_it_spans_and_gives_every_strideth():
    window = FrameWindow(3, stride=2)  # spans 5 frames: gives frames t-4, t-2, t
    for t in range(7):
        (out,) = window.push(np.float32(t))
        want = [max(t - 4, 0), max(t - 2, 0), t] if t else [0, 0, 0]
        assert out.tolist() == want, (t, out.tolist())
