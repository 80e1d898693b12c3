import numpy as np
import pytest
from support import tone

from edgemm.data import AudioConfig, DataError, PreprocessConfig, open_dataset
from edgemm.data.video import decode_clip, write_clip


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    from edgemm.data.synthetic import SyntheticConfig, make_video_folder

    return make_video_folder(tmp_path_factory.mktemp("videos"), clips_per_class=3, seconds=2.0,
                             cfg=SyntheticConfig(samples_per_class=3))


def test_video_folder_gives_samples_from_h264_aac_clips(video_root):
    data = open_dataset(video_root, PreprocessConfig(), samples_per_clip=2)
    assert len(data.labels) == 10
    total = len(data.train) + len(data.val) + len(data.test)
    assert total == 10 * 3 * 2
    assert len(data.test) == 10 * 2  # one clip per class in test, both of its samples with it
    item = data.train[0]
    assert item["image"].shape == (3, 64, 64) and item["audio"].shape == (16000,)
    assert np.abs(item["audio"]).max() > 0.01


def test_audio_window_ends_at_the_frame_timestamp(tmp_path):
    """A 1 kHz burst from 1.0 s to 1.3 s; the frame at 1.5 s gets the window 0.5-1.5 s (end-aligned)."""
    sr, fps = 48000, 10
    wave = np.zeros(sr * 2, np.float32)
    wave[sr : sr + int(0.3 * sr)] = tone(1000, sr, 0.3)
    wave += np.random.default_rng(0).normal(0, 1e-3, len(wave)).astype(np.float32)
    frames = [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(2 * fps)]
    path = write_clip(tmp_path / "burst.mp4", frames, fps, wave, sr)
    clip = decode_clip(path, 16000)
    assert len(clip.frames) == 20 and abs(clip.times[15] - 1.5) < 1e-6
    from edgemm.data.preprocess import window_at

    win = window_at(clip.audio, clip.times[15] - clip.audio_start, AudioConfig())
    energy = np.convolve(win**2, np.ones(160) / 160, mode="same")
    loud = np.flatnonzero(energy > 0.25 * energy.max())
    # burst at 1.0-1.3 s sits at 0.5-0.8 s of a window starting at 0.5 s (AAC priming: a few ms)
    assert abs(loud[0] / 16000 - 0.5) < 0.02 and abs(loud[-1] / 16000 - 0.8) < 0.02


def test_bad_videos_are_named_and_skippable(tmp_path, video_root):
    import shutil

    import av

    root = tmp_path / "root"
    for label in ("a", "b"):
        for k in range(3):
            src = next((video_root / "circle_beep").glob("*.mp4"))
            (root / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / label / f"c{k}.mp4")
    (root / "a" / "c1.mp4").write_bytes(b"\x00" * 100)
    # a clip without an audio track
    with av.open(str(root / "b" / "c2.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for _i in range(5):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        c.mux(s.encode())
    with pytest.raises(DataError, match=r"c1.mp4: cannot open video|c2.mp4: has no audio track"):
        open_dataset(root, PreprocessConfig())
    data = open_dataset(root, PreprocessConfig(), skip_bad=True, samples_per_clip=1)
    assert len(data.skipped) == 2
    assert len(data.train) + len(data.val) + len(data.test) == 4


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="no videos found"):
        open_dataset(tmp_path, PreprocessConfig(), format="video")


def test_video_with_a_silent_audio_track_is_rejected(tmp_path):
    frames = [np.full((32, 32, 3), 100, np.uint8)] * 10
    path = write_clip(tmp_path / "silent.mp4", frames, 10, np.zeros(16000, np.float32), 16000)
    with pytest.raises(DataError, match=r"silent.mp4: audio is silent"):
        decode_clip(path, 16000)


def test_every_sample_knows_its_clip_so_eval_can_answer_per_clip(video_root):
    data = open_dataset(video_root, PreprocessConfig(), samples_per_clip=2, splits=("test",))
    clips = data.test.clip_ids()
    assert len(clips) == len(data.test) == 20 and len(set(clips.tolist())) == 10
    # Both samples of a clip are adjacent and share its label.
    for c in set(clips.tolist()):
        (i, j) = np.flatnonzero(clips == c)
        assert data.test[i]["label"] == data.test[j]["label"]


def test_clip_accuracy_votes_with_the_mean_probability_of_each_clips_samples():
    from edgemm.metrics import clip_accuracy, metrics

    # Clip 0 (label 0): one sample confidently right, one mildly wrong -> right as a clip.
    # Clip 1 (label 1): one sample mildly right, one confidently wrong -> wrong as a clip.
    logits = np.log(np.array([[0.9, 0.1], [0.4, 0.6], [0.4, 0.6], [0.95, 0.05]]))
    y, clips = np.array([0, 0, 1, 1]), np.array([5, 5, 9, 9])
    assert clip_accuracy(logits, y, clips) == (0.5, 2)
    result = metrics({"fused": logits, "image_only": logits, "audio_only": logits}, y, ["a", "b"], clips)
    assert result.accuracy == 0.5 and result.accuracy_clip == 0.5 and result.n_clips == 2
    assert metrics({"fused": logits, "image_only": logits, "audio_only": logits}, y, ["a", "b"]).accuracy_clip is None


def test_a_temporal_models_samples_are_consecutive_frames_ending_at_the_frame_models_sample(video_root):
    frame = open_dataset(video_root, PreprocessConfig(), samples_per_clip=2, splits=("test",)).test
    window = open_dataset(video_root, PreprocessConfig(frames=3), samples_per_clip=2, splits=("test",)).test
    assert len(window) == len(frame)
    for k in (0, 1):  # both samples of the first test clip
        w, f = window[k], frame[k]
        assert w["image"].shape == (3, 3, 64, 64) and w["audio"].shape == (3, 16000) and w["label"] == f["label"]
        np.testing.assert_array_equal(w["image"][-1], f["image"])
        np.testing.assert_array_equal(w["audio"][-1], f["audio"])
        assert not np.array_equal(w["audio"][0], w["audio"][-1])  # each frame has its own audio window


def test_a_temporal_model_refuses_a_manifest_whose_rows_have_no_order(tmp_path):
    from support import write_manifest

    csv = write_manifest(tmp_path / "m.csv", [["a.png", "a.wav", "x", "train"]])
    with pytest.raises(DataError, match=r"m\.csv.*preprocess.frames = 4.*give a video folder"):
        open_dataset(csv, PreprocessConfig(frames=4))


def test_a_strided_window_takes_every_strideth_frame_and_repeats_the_first_before_the_clip(video_root):
    from edgemm.data.video import decode_clip, frame_window, scan_video_folder

    cfg = PreprocessConfig(frames=3, frame_stride=4)
    clip = decode_clip(scan_video_folder(video_root).clips[0][0], cfg.audio.sample_rate)
    frame = PreprocessConfig()
    for k, want in ((20, (12, 16, 20)), (5, (0, 1, 5))):
        w = frame_window(clip, k, cfg)
        for got, i in zip(w["image"], want):
            np.testing.assert_array_equal(got, frame_window(clip, i, frame)["image"])
        for got, i in zip(w["audio"], want):
            np.testing.assert_array_equal(got, frame_window(clip, i, frame)["audio"])


def test_a_timed_window_covers_the_same_seconds_at_any_frame_rate(tmp_path):
    """One scene at 15 and at 30 fps: a model whose stride counts at 15 fps gets, from each, the frames
    shown at the same moments (the 30 fps clip's every other frame), and the folder reports its rate."""
    from edgemm.data import stream_frame_rate
    from edgemm.data.video import decode_clip, frame_window

    # 3 s of frames, each a flat colour far from the next one's (H.264 keeps flat colours)
    scene = [np.full((64, 64, 3), [(53 * i) % 256, (97 * i) % 256, (31 * i) % 256], np.uint8) for i in range(45)]
    sound = tone(440.0, 16000, 3.0)
    for fps, frames in ((15, scene), (30, [f for f in scene for _ in (0, 1)])):
        (tmp_path / f"r{fps}" / "a").mkdir(parents=True)
        write_clip(tmp_path / f"r{fps}" / "a" / "clip.mp4", frames, fps, sound, 16000)
    slow, fast = (decode_clip(tmp_path / f"r{fps}" / "a" / "clip.mp4", 16000) for fps in (15, 30))
    timed = PreprocessConfig(frames=4, frame_stride=5, frame_rate=15.0)
    counted = PreprocessConfig(frames=4, frame_stride=5)
    for k in (3, 20, 44):  # before the span is full, and after
        at_15 = frame_window(slow, k, timed)
        at_30 = frame_window(fast, 2 * k, timed)
        np.testing.assert_array_equal(at_15["image"], frame_window(slow, k, counted)["image"])  # its own rate: counted
        np.testing.assert_allclose(at_30["image"], at_15["image"], atol=0.1)  # the same frames (H.264 differs a little)
        assert not np.allclose(frame_window(fast, 2 * k, counted)["image"][0], at_15["image"][0], atol=0.1) or k == 3
    assert stream_frame_rate(tmp_path / "r30") == 30.0 and stream_frame_rate(tmp_path / "r15") == 15.0
