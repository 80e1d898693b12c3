"""The temporal model: K frames in, one answer out, presence per frame or per sample."""

import pytest
import torch

from edgemm.data.preprocess import PreprocessConfig
from edgemm.models import create_model
from edgemm.models.temporal import TemporalAVModel


def _model(**kw):
    """An untrained ``tiny_temporal`` whose batch norms have running statistics (at their defaults a
    fresh image branch gives nearly the same output for every image)."""
    torch.manual_seed(0)
    model = create_model("tiny_temporal", **kw).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.05, 0.5)
    return model


def test_inputs_have_a_time_axis_of_the_models_frames():
    model = _model()
    image, audio, mi, ma = model.example_inputs(2)
    assert model.preprocess.frames == model.frames == 3 and model.preprocess.frame_stride == 2
    assert model.preprocess.window_span == 5
    assert image.shape == (2, 3, 3, 32, 32) and audio.shape == (2, 3, 4000) and mi.shape == ma.shape == (2, 3)
    assert model(image, audio, mi, ma).shape == (2, 4)
    assert create_model("av_student_temporal", frames=6).example_inputs(1)[0].shape == (1, 6, 3, 64, 64)


def test_every_frame_of_the_window_counts():
    model = _model()
    image, audio, mi, ma = model.example_inputs(1)
    torch.manual_seed(1)
    image, audio = torch.randn_like(image), 0.1 * torch.randn_like(audio)
    with torch.no_grad():
        base = model(image, audio, mi, ma)
        for k in range(model.frames):  # a change in any one frame, image or audio, changes the answer
            for x in (image, audio):
                changed = x.clone()
                changed[:, k] = torch.randn_like(changed[:, k]) * x.std()  # a constant would not do: images are standardised
                args = (changed, audio) if x is image else (image, changed)
                assert (model(*args, mi, ma) - base).abs().max() > 1e-3, (k, x is image)


def test_per_sample_flags_hold_for_the_whole_window():
    model = _model()
    image, audio, _, _ = model.example_inputs(2)
    image = torch.randn_like(image)
    flags = torch.tensor([1.0, 0.0])
    with torch.no_grad():
        per_sample = model(image, audio, flags, torch.ones(2))
        per_frame = model(image, audio, flags[:, None].expand(2, 3), torch.ones(2, 3))
    torch.testing.assert_close(per_sample, per_frame)


def test_a_window_of_one_frame_or_late_fusion_is_refused():
    with pytest.raises(ValueError, match="2 frames or more"):
        create_model("tiny_temporal", frames=1)
    with pytest.raises(ValueError, match="late fusion"):
        create_model("tiny_temporal", fusion="late")
    with pytest.raises(ValueError, match="frames=5 but preprocess.frames=3"):
        TemporalAVModel(num_classes=3, frames=5, preprocess={"frames": 3})
    with pytest.raises(ValueError, match="frame_stride=2 but preprocess.frame_stride=3"):
        TemporalAVModel(num_classes=3, frame_stride=2, preprocess={"frames": 4, "frame_stride": 3})


def test_frames_travel_in_the_preprocessing_and_frame_models_read_as_before():
    cfg = _model().preprocess
    assert cfg.to_dict()["frames"] == 3 and cfg.to_dict()["frame_stride"] == 2
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert not {"frames", "frame_stride"} & set(PreprocessConfig().to_dict())  # a frame model's manifest is unchanged
    assert not cfg.same_inputs(PreprocessConfig(image=cfg.image, audio=cfg.audio))
    with pytest.raises(ValueError, match="preprocess.frames: expected an integer from 1 to 64, got 0"):
        PreprocessConfig.from_dict({"frames": 0})
