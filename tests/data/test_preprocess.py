import numpy as np
import pytest
from support import write_png

from edgemm.data.preprocess import (
    AudioAlign,
    AudioConfig,
    ImageConfig,
    PreprocessConfig,
    fit_length,
    preprocess_audio,
    preprocess_image,
    to_mono,
    window_at,
)


def test_image_is_centre_cropped_resized_and_normalised():
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 20:80] = 255  # the centre square is white, the side bands black
    x = preprocess_image(img, ImageConfig(size=30, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert x.shape == (3, 30, 30) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0)  # (1 - 0.5) / 0.5 everywhere: the black bands were cropped


def test_image_rejects_wrong_layout():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess_image(np.zeros((3, 64, 64), np.float32), ImageConfig())


def test_opencv_frames_and_pillow_files_preprocess_identically(tmp_path):
    """The runtime decodes camera frames with OpenCV (BGR); training decodes files with Pillow."""
    import cv2

    from edgemm.data.media import read_image

    rgb = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    path = write_png(tmp_path / "x.png", rgb)
    via_pillow = preprocess_image(read_image(path), ImageConfig())
    via_opencv = preprocess_image(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), ImageConfig())
    np.testing.assert_array_equal(via_pillow, via_opencv)


def test_audio_int16_stereo_is_scaled_and_downmixed():
    pcm = np.stack([np.full(100, 16384, np.int16), np.full(100, -16384, np.int16)], 1)
    np.testing.assert_allclose(to_mono(pcm), 0.0)
    np.testing.assert_allclose(to_mono(pcm[:, :1]), 0.5)


def test_audio_is_resampled_and_fitted_to_the_clip_length():
    cfg = AudioConfig(sample_rate=16000, clip_seconds=1.0)
    out = preprocess_audio(np.ones(22050 * 3, np.float32) * 0.1, 22050, cfg)
    assert out.shape == (16000,)
    np.testing.assert_allclose(out[1000:-1000], 0.1, atol=1e-3)
    short = fit_length(np.ones(10, np.float32), 16)
    assert short.tolist() == [0, 0, 0] + [1] * 10 + [0, 0, 0]


def test_window_at_end_and_centre():
    cfg_end = AudioConfig(sample_rate=1000, clip_seconds=0.5, n_fft=100, win_length=100, hop_length=50, f_max=500)
    cfg_mid = AudioConfig(**{**cfg_end.__dict__, "align": AudioAlign.CENTER})
    wave = np.arange(2000, dtype=np.float32)
    assert window_at(wave, 1.0, cfg_end)[[0, -1]].tolist() == [500, 999]
    assert window_at(wave, 1.0, cfg_mid)[[0, -1]].tolist() == [750, 1249]
    early = window_at(wave, 0.1, cfg_end)  # before the start: zeros, then the first samples
    assert early[:400].max() == 0 and early[-1] == 99


def test_config_round_trips_and_rejects_unknown_keys_and_values():
    cfg = PreprocessConfig(image=ImageConfig(size=96), audio=AudioConfig(align="center"))
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"preprocess.audio: unknown key\(s\) \['sr'\]"):
        PreprocessConfig.from_dict({"audio": {"sr": 8000}})
    with pytest.raises(ValueError, match=r"audio.align: 'middle' is not one of \['end', 'center'\]"):
        AudioConfig(align="middle")
    with pytest.raises(ValueError, match="image.size"):
        ImageConfig(size=4)
    with pytest.raises(ValueError, match="f_max"):
        AudioConfig(sample_rate=8000, f_max=8000)


def test_window_positions_count_frames_or_pick_them_by_time():
    from edgemm.data.preprocess import window_positions

    timed = PreprocessConfig(frames=4, frame_stride=5, frame_rate=15.0)
    counted = PreprocessConfig(frames=4, frame_stride=5)
    at_15, at_30 = np.arange(60) / 15, np.arange(120) / 30
    assert window_positions(at_15, 40, timed) == window_positions(None, 40, timed) == [24, 29, 34, 39]
    assert window_positions(at_15, 7, timed) == window_positions(at_15, 7, counted) == [0, 0, 1, 6]  # the first repeats
    assert window_positions(at_30, 79, timed) == [48, 58, 68, 78]  # same seconds at 30 fps: 2.6, 2.93, 3.27, 3.6
    assert window_positions(at_30, 79, counted) == [63, 68, 73, 78]  # counted: half the span
    jitter = np.cumsum(np.random.default_rng(0).uniform(0.025, 0.041, 300))
    picked = window_positions(jitter, 200, timed)
    assert np.abs(np.diff(jitter[picked]) - 1 / 3).max() < 0.041  # within a frame of 1/3 s apart


def test_frame_rate_travels_in_the_config_and_is_checked():
    cfg = PreprocessConfig(frames=4, frame_stride=5, frame_rate=29.97)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg and cfg.frame_step == pytest.approx(5 / 29.97)
    assert "frame_rate" not in PreprocessConfig(frames=4).to_dict()  # counted windows read as before
    assert not cfg.same_inputs(PreprocessConfig(frames=4, frame_stride=5))
    with pytest.raises(ValueError, match="preprocess.frame_rate: expected frames per second"):
        PreprocessConfig(frames=4, frame_rate=0)
