"""Keeping frames and audio in time: chunk-size invariance, latest-frame policy, rejected streams."""

import threading

import numpy as np
import pytest

from edgemm.data.preprocess import AudioConfig, window_at
from edgemm.runtime.pipeline import Pipeline, RunConfig
from edgemm.runtime.smoothing import Smoother
from edgemm.runtime.sync import AudioChunk, AudioRing, Frame, StreamError, Sync

SR = 8000


def chunks(wave, sizes, t0=None):
    """``wave`` cut into chunks cycling through ``sizes``; only the first carries a timestamp."""
    out, i, k = [], 0, 0
    while i < len(wave):
        n = sizes[k % len(sizes)]
        out.append(AudioChunk(wave[i:i + n], SR, t0 if i == 0 else None))
        i, k = i + n, k + 1
    return out


def test_ring_windows_do_not_depend_on_chunking_and_match_training_windows():
    rng = np.random.default_rng(0)
    wave = rng.normal(size=3 * SR).astype(np.float32)
    cfg = AudioConfig(sample_rate=SR, clip_seconds=0.5, n_fft=256, win_length=200, hop_length=100, n_mels=24,
                      f_min=50.0, f_max=4000.0)
    windows = []
    for sizes in ([1], [160], [333, 17, 4096], [len(wave)]):
        ring = AudioRing(SR)
        for c in chunks(wave, sizes, t0=0.25):
            ring.write(c)
        windows.append([ring.window(t, cfg.clip_samples) for t in (0.3, 0.75, 1.0, 2.2, 3.25)])
    for other in windows[1:]:
        np.testing.assert_array_equal(np.stack(windows[0]), np.stack(other))
    # The same window the training data path cuts for a frame at t (audio starting at 0.25 s).
    for t, w in zip((0.3, 0.75, 1.0, 2.2, 3.25), windows[0]):
        np.testing.assert_array_equal(w, window_at(wave, t - 0.25, cfg))


def test_ring_rejects_wrong_rate_and_time_going_backwards_and_fills_gaps():
    ring = AudioRing(SR)
    with pytest.raises(StreamError, match="16000 Hz; this stream runs at 8000 Hz"):
        ring.write(AudioChunk(np.zeros(10, np.float32), 16000, 0.0))
    ring.write(AudioChunk(np.ones(SR, np.float32), SR, 1.0))
    with pytest.raises(StreamError, match="went backwards: chunk at t=1.5000 s"):
        ring.write(AudioChunk(np.ones(100, np.float32), SR, 1.5))
    ring.write(AudioChunk(np.full(SR, 2.0, np.float32), SR, 3.0))  # a 1 s dropout
    assert ring.gaps == 1 and ring.end_time == pytest.approx(4.0)
    w = ring.window(3.5, SR)  # 2.5 .. 3.5 s: half silence, half the new audio
    assert (w[: SR // 2] == 0).all() and (w[SR // 2:] == 2.0).all()


def test_ring_keeps_only_its_capacity():
    ring = AudioRing(SR, seconds=1.0)
    ring.write(AudioChunk(np.arange(3 * SR, dtype=np.float32), SR, 0.0))
    w = ring.window(3.0, 2 * SR)
    assert (w[:SR] == 0).all() and (w[SR:] == np.arange(2 * SR, 3 * SR)).all()
    # Chunks that wrap around the ring at every offset: each window is the stream's own samples.
    ring, wave = AudioRing(SR, seconds=1.0), np.arange(int(3.3 * SR), dtype=np.float32)
    for c in chunks(wave, [333, 4001, 7], t0=0.0):
        ring.write(c)
        end = ring.end
        for n in (1, 999, SR // 2):
            np.testing.assert_array_equal(ring.window(end / SR, n), wave[max(end - n, 0):end].tolist()
                                          if end >= n else np.r_[np.zeros(n - end), wave[:end]])


def test_latest_frame_policy_drops_and_counts_stale_frames():
    sync = Sync(SR, 400, audio=False)
    for i in range(5):
        sync.put_frame(Frame(0.1 * (i + 1), np.full((4, 4, 3), i, np.uint8)))
    sample = sync.next(timeout=1)
    assert sample.t == pytest.approx(0.5) and sample.image[0, 0, 0] == 4 and sample.audio is None
    assert sync.drops == 4 and sync.frames_in == 5
    assert sync.next(timeout=0.05) is None
    with pytest.raises(StreamError, match="frame timestamp went backwards or repeated: t=0.5000"):
        sync.put_frame(Frame(0.5, np.zeros((4, 4, 3), np.uint8)))


def test_a_frame_waits_for_the_audio_that_ends_at_its_time():
    sync = Sync(SR, 400, latest_only=True, audio_wait=5.0)
    sync.put_audio(AudioChunk(np.ones(SR // 2, np.float32), SR, 0.0))  # audio up to 0.5 s
    sync.put_frame(Frame(0.8, np.zeros((4, 4, 3), np.uint8)))
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("s", sync.next(timeout=5)))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()  # still waiting: the microphone is behind the camera
    late = AudioChunk(np.full(SR // 2, 2.0, np.float32), SR)
    sync.put_audio(late)  # now up to 1.0 s
    reader.join(5)
    window = got["s"].audio  # 0.75 .. 0.8 s
    assert len(window) == 400 and (window[:-int(0.3 * SR)] == 1.0).all() and (window[-int(0.3 * SR):] == 2.0).all()
    # Telemetry: the audio reached 1.0 s when the 0.8 s frame was paired (200 ms ahead), and the
    # window's last sample arrived in the late chunk: the audio path's latency runs from its capture.
    assert got["s"].av_skew_ms == pytest.approx(200.0) and got["s"].audio_captured_ns == late.captured_ns


def test_the_ring_tells_when_each_sample_was_captured_and_how_fast_the_source_clock_runs():
    rate, block, ppm = 16000, 320, 150.0  # a sound card 150 ppm fast: 20 ms of samples in 19.997 ms
    ring, ns = AudioRing(rate, seconds=2.0), 5_000_000_000
    for _ in range(int(12 / 0.02)):  # 12 s
        ring.write(AudioChunk(np.zeros(block, np.float32), rate, captured_ns=ns))
        ns += round(block / rate / (1 + ppm * 1e-6) * 1e9)
        if ring.end == 9 * rate:
            assert ring.drift_ppm() is None  # under 10 s: capture jitter would dominate
    assert ring.drift_ppm() == pytest.approx(ppm, rel=0.01)
    last = ring._stamps[-1][1]
    assert ring.captured_ns(ring.end) == last and ring.captured_ns(ring.end - block + 1) == last
    assert ring.captured_ns(ring.end - block) == ring._stamps[-2][1]  # the chunk before the newest
    assert ring.captured_ns(ring.end + 1) is None  # not captured yet


def test_audio_only_samples_every_hop_and_live_skips_to_the_newest():
    sync = Sync(SR, SR // 2, video=False, latest_only=False, hop=0.25)
    sync.put_audio(AudioChunk(np.zeros(SR, np.float32), SR, 0.0))
    sync.close("audio")
    ts = []
    while (s := sync.next(timeout=1)) is not None:
        ts.append(s.t)
    assert ts == pytest.approx([0.5, 0.75, 1.0])
    live = Sync(SR, SR // 2, video=False, latest_only=True, hop=0.25)
    live.put_audio(AudioChunk(np.zeros(2 * SR, np.float32), SR, 0.0))
    assert live.next(timeout=1).t == pytest.approx(2.0) and live.drops == 6


class ListSource:
    """Packets from a list (the streaming logic under test, not a device)."""

    live, realtime = False, False

    def __init__(self, packets, streams):
        self._packets, self.streams = packets, frozenset(streams)

    def packets(self):
        yield from self._packets

    def stop(self):
        pass


def test_the_same_audio_in_different_chunk_sizes_gives_the_same_predictions(onnx_bundle):
    from support import CLASSES, easy_frame

    from edgemm.runtime import load

    session = load(onnx_bundle)
    sr = session.preprocess.audio.sample_rate
    rng = np.random.default_rng(3)
    t = np.arange(3 * sr) / sr
    wave = np.concatenate([0.4 * np.sin(2 * np.pi * CLASSES[lab][1] * t[: sr * 3 // 4]) for lab in CLASSES])
    wave = (wave + rng.normal(0, 0.02, wave.size)).astype(np.float32)
    frames = [Frame(0.1 * (i + 1), easy_frame(list(CLASSES)[min(i // 7, 3)], rng)) for i in range(29)]
    runs = []
    for sizes in ([sr // 50], [37, 1000, 5], [len(wave)]):
        audio = [AudioChunk(c.samples, sr, c.t) for c in chunks(wave, sizes, t0=0.0)]
        packets = sorted(audio + frames, key=lambda p: (p.t if isinstance(p, Frame) else -1))
        # Audio first (as a file source releases it), so every frame has its whole window.
        results = []

        class Collect:
            def put(self, r):
                results.append((round(r.t, 6), r.raw_label, [round(v, 6) for v in r.scores.values()]))  # noqa: B023

            def close(self):
                pass

        source = ListSource(packets, {"video", "audio"})
        summary = Pipeline(session, [source], RunConfig(liveness=False), [Collect()]).run()
        assert summary.results == len(frames) and summary.drops == 0
        runs.append(results)
    assert runs[0] == runs[1] == runs[2]
    assert {r[1] for r in runs[0]} >= {"red_low", "green_mid"}  # the predictions do follow the media


def test_smoothing_ema_majority_and_threshold():
    ema = Smoother(["a", "b"], k=3)  # alpha = 0.5
    assert ema.update(np.array([0.9, 0.1]))[0] == "a"
    label, score, _ = ema.update(np.array([0.2, 0.8]))
    assert (label, score) == ("a", pytest.approx(0.55))  # one frame of "b" does not flip it
    assert ema.update(np.array([0.2, 0.8]))[:2] == ("b", pytest.approx(0.625))
    maj = Smoother(["a", "b", "c"], k=3, mode="majority")
    labels = [maj.update(np.eye(3)[i] * 0.8 + 0.05)[0] for i in (0, 0, 1, 1, 2)]
    assert labels == ["a", "a", "a", "b", "b"]
    sure = Smoother(["a", "b"], threshold=0.7)
    assert sure.update(np.array([0.6, 0.4]))[:2] == (None, pytest.approx(0.6))
    with pytest.raises(ValueError, match=r"smooth mode: 'median' is not one of \['ema', 'majority'\]"):
        Smoother(["a"], mode="median")
    with pytest.raises(ValueError, match="K must be >= 1"):
        Smoother(["a"], k=0)


def test_frame_std_estimates_on_a_grid_and_tells_a_covered_camera():
    from edgemm.runtime.pipeline import frame_std

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    covered = (20 + rng.integers(0, 3, (480, 640, 3))).astype(np.uint8)  # dark, sensor noise only
    assert frame_std(scene) == pytest.approx(float(scene.std()), rel=0.02)
    assert frame_std(covered) < RunConfig().image_min_std <= frame_std(scene)
    small = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    assert frame_std(small) == pytest.approx(float(small.std()), rel=1e-9)  # small frames: every pixel
    grey = rng.integers(0, 256, (480, 640), dtype=np.uint8)  # a single-channel camera
    assert frame_std(grey) == pytest.approx(float(grey.std()), rel=0.02)


def test_a_resync_chunk_moves_the_time_axis_without_silence_or_an_error():
    ring = AudioRing(16000)
    ring.write(AudioChunk(np.ones(16000, np.float32), 16000, t=10.0))
    ring.write(AudioChunk(np.ones(1600, np.float32), 16000, t=10.97, resync=True))  # the clock ran 30 ms fast
    assert ring.resyncs == 1 and ring.gaps == 0
    assert ring.end_time == pytest.approx(10.97 + 0.1)
    with pytest.raises(StreamError, match="went backwards"):  # without resync, the same time is an error
        ring.write(AudioChunk(np.ones(1600, np.float32), 16000, t=11.0))


@pytest.mark.parametrize("ppm", [190.0, -250.0])
def test_the_microphone_clock_follows_the_camera_clock_over_half_an_hour(ppm):
    """A sound card whose sample clock is ``ppm`` off the wall clock, callbacks jittered by +-15 ms:
    by sample count alone the audio drifts 340 ms in 30 minutes (the soak benchmark measured this); the
    follower keeps every chunk's time within 50 ms of when it was captured."""
    from edgemm.runtime.sources.microphone import ClockFollower

    rate, block = 16000, 320  # 20 ms blocks
    follower, ring = ClockFollower(rate), AudioRing(rate, seconds=2.0)
    rng = np.random.default_rng(0)
    wall = 100.0
    worst = 0.0
    for _ in range(int(30 * 60 / 0.02)):
        measured = wall + rng.uniform(-0.015, 0.015)
        t, resync = follower.stamp(measured, block)
        start = ring.end_time if ring.end_time is not None else t
        ring.write(AudioChunk(np.zeros(block, np.float32), rate, t=t, resync=resync))
        worst = max(worst, abs((ring.end_time - block / rate) - wall)) if start is not None else worst
        wall += block / (rate * (1 + ppm * 1e-6))  # the card's 320 samples take this long on the wall clock
    assert worst < 0.05
    assert follower.resyncs >= 5 and follower.gaps == ring.gaps == 0


def test_a_stalled_microphone_resumes_as_a_gap_of_silence():
    from edgemm.runtime.sources.microphone import ClockFollower

    follower, ring = ClockFollower(16000), AudioRing(16000)
    for i in range(50):
        t, resync = follower.stamp(5.0 + i * 0.02, 320)
        ring.write(AudioChunk(np.ones(320, np.float32), 16000, t=t, resync=resync))
    t, resync = follower.stamp(5.0 + 50 * 0.02 + 3.0, 320)  # 3 s with no callbacks, then audio again
    assert (t, resync) == (pytest.approx(9.0), False) and follower.gaps == 1
    ring.write(AudioChunk(np.ones(320, np.float32), 16000, t=t))
    assert ring.gaps == 1 and ring.end_time == pytest.approx(9.02)
