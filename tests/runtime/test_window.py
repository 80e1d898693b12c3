"""The runtime's window of a temporal model's last K frames."""

import numpy as np
import pytest

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


def test_a_timed_window_picks_the_same_moments_from_a_faster_camera():
    slow, fast = FrameWindow(4, stride=5, frame_rate=15.0), FrameWindow(4, stride=5, frame_rate=15.0)
    for n in range(60):  # frame values are their times in 1/30 s
        (at_15,) = slow.push(np.float32(2 * n), t=n / 15)
        (at_30,) = fast.push(np.float32(2 * n), t=2 * n / 30)
        (at_30,) = fast.push(np.float32(2 * n + 1), t=(2 * n + 1) / 30)
        assert at_15.tolist() == [max(2 * n - 10 * j, 0) for j in (3, 2, 1, 0)]  # 15 fps: counted
        want = [max(2 * n + 1 - 10 * j, 0) for j in (3, 2, 1, 0)]
        assert at_30.tolist() == want, (n, at_30.tolist())  # 30 fps: every 10th frame, the same 1/3 s apart
    assert len(fast) <= 32  # it keeps what the span needs, not the stream
    (counted,) = FrameWindow(4, stride=5, frame_rate=15.0).push(np.float32(1.0))  # no timestamps: counted
    assert counted.tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="timestamps must not go back"):
        fast.push(np.float32(0.0), t=0.0)
    with pytest.raises(ValueError, match="all with timestamps or all without"):
        fast.push(np.float32(0.0))
