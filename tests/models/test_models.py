import pytest
import torch

from edgemm.models import FusionType, create_model, list_models

MODELS = list_models()
TEST_MODELS = list_models("test_*")


def test_registry_has_teacher_student_and_a_test_variant_per_fusion():
    assert {"av_teacher", "av_student"} <= set(MODELS)
    assert {create_model(n).fusion.__class__.__name__ for n in TEST_MODELS} == {
        f"{f.value.capitalize()}Fusion" for f in FusionType
    }
    with pytest.raises(ValueError, match="unknown model 'nope'; registered: av_student"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown fusion 'sum'; registered: attention, concat"):
        create_model("test_concat", fusion="sum")


def test_student_is_compact_and_teachers_several_times_larger():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    student = count(create_model("av_student"))
    assert student <= 1_500_000
    assert count(create_model("av_teacher")) >= 5 * student
    assert count(create_model("av_teacher_resnet18")) >= 20 * student


def test_zoo_models_standardise_each_image_so_exposure_and_contrast_do_not_change_the_answer():
    model = _calibrated("av_student")
    assert model.preprocess.image.standardize
    assert create_model("av_teacher", preprocess={"image": {"size": 96}}).preprocess.image.standardize  # merged
    assert not create_model("av_student", preprocess={"image": {"standardize": False}}).preprocess.image.standardize
    image, audio, _, _ = model.example_inputs(4)
    image = torch.randn_like(image)
    on, off = torch.ones(4), torch.zeros(4)
    with torch.no_grad():
        plain = model(image, audio, on, off)
        torch.testing.assert_close(model(2.0 * image + 0.3, audio, on, off), plain, atol=1e-2, rtol=0)
        unnormalised = create_model("av_student", num_classes=5, preprocess={"image": {"standardize": False}})
        unnormalised.load_state_dict(model.state_dict())
        unnormalised.eval()
        assert not torch.allclose(unnormalised(2.0 * image + 0.3, audio, on, off), unnormalised(image, audio, on, off),
                                  atol=1e-1)


def _calibrated(name: str) -> torch.nn.Module:
    """A fresh model whose BatchNorm running statistics have seen data, as after any training."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
    image, audio, _, _ = model.example_inputs(8)
    with torch.no_grad():
        for _ in range(30):
            model(torch.randn_like(image), torch.randn_like(audio) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", MODELS)
def test_forward_with_both_one_or_no_modality(name):
    model = _calibrated(name)
    image, audio, _, _ = model.example_inputs(2)
    image, audio = torch.randn_like(image), torch.randn_like(audio) * 0.1
    other_image, other_audio = torch.randn_like(image), torch.randn_like(audio) * 0.1
    on, off = torch.ones(2), torch.zeros(2)
    with torch.no_grad():
        both = model(image, audio, on, on)
        assert both.shape == (2, 5) and torch.isfinite(both).all()
        assert torch.equal(model(image, audio), both)  # presence defaults to "both live"
        # An absent modality has no influence, whatever its input holds.
        torch.testing.assert_close(model(image, audio, on, off), model(image, other_audio, on, off))
        torch.testing.assert_close(model(image, audio, off, on), model(other_image, audio, off, on))
        none = model(image, audio, off, off)
        torch.testing.assert_close(none, model(other_image, other_audio, off, off))
        assert torch.isfinite(none).all()
        # And a live one does.
        assert not torch.allclose(model(image, audio, on, off), model(other_image, audio, on, off))


def test_model_carries_its_preprocessing():
    model = create_model("test_gated", preprocess={"image": {"size": 48}})
    assert model.preprocess.image.size == 48
    assert model.example_inputs(3)[0].shape == (3, 3, 48, 48)
    assert model.edgemm_spec == {"name": "test_gated", "kwargs": {"preprocess": {"image": {"size": 48}}}}


def test_pretrained_image_weights_load_from_a_local_file(tmp_path):
    from torchvision.models import mobilenet_v3_small

    src = mobilenet_v3_small()
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, tmp_path / "mnv3.pth")
    model = create_model("av_student_mnv3", image_encoder_kw={"pretrained": str(tmp_path / "mnv3.pth")})
    torch.testing.assert_close(model.image_encoder.features[0][0].weight, src.features[0][0].weight)
    with pytest.raises(ValueError, match="do not fit this backbone"):
        create_model("av_student_mnv3", image_encoder_kw={"width": 0.5, "pretrained": str(tmp_path / "mnv3.pth")})
    with pytest.raises(FileNotFoundError, match="pretrained weights not found"):
        create_model("av_student_mnv3", image_encoder_kw={"pretrained": str(tmp_path / "none.pth")})


def test_the_160_px_student_is_the_student_at_camera_resolution():
    wide, base = create_model("av_student_160"), create_model("av_student")
    assert wide.preprocess.image.size == 160 and wide.preprocess.image.standardize
    assert wide.preprocess.audio == base.preprocess.audio
    assert sum(p.numel() for p in wide.parameters()) == sum(p.numel() for p in base.parameters())
    with torch.no_grad():
        assert wide(*wide.example_inputs(2)).shape == (2, 10)


def test_the_separable_student_keeps_the_student_shapes_at_under_half_its_macs():
    from edgemm.compress.prune import count_macs_params, frontend_macs

    ds, base = create_model("av_student_ds"), create_model("av_student")
    (ds_macs, ds_params), (base_macs, base_params) = count_macs_params(ds), count_macs_params(base)
    assert frontend_macs(ds) == frontend_macs(base) > 0
    assert ds_macs - frontend_macs(ds) < 0.45 * (base_macs - frontend_macs(base))
    assert ds_params < base_params / 2
    convs = [m for m in ds.modules() if isinstance(m, torch.nn.Conv2d)]
    depthwise = [m for m in convs if m.groups == m.in_channels > 1]
    assert len(depthwise) == 6 and all(m.kernel_size == (3, 3) for m in depthwise)
    # The stems stay full convolutions (a depthwise conv of 1 or 3 input channels learns nothing).
    assert ds.image_encoder.features[0].groups == ds.audio_encoder.body[0].groups == 1
    assert ds.preprocess == base.preprocess
    deeper = create_model("av_student_ds", image_encoder_kw={"convs_per_block": 2})
    assert sum(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in deeper.image_encoder.modules()) == 6
    with torch.no_grad():
        assert ds(*ds.example_inputs(2)).shape == (2, 10)


def test_plain_blocks_keep_their_state_dict_names_so_older_checkpoints_load():
    keys = set(create_model("av_student").state_dict())
    assert {"image_encoder.features.4.weight", "image_encoder.features.12.weight",
            "audio_encoder.body.12.weight"} <= keys


def test_attention_masking_is_an_exact_softmax_that_an_absent_key_cannot_turn_into_nan():
    """Real-data training grew attention logits to a spread of 450: an absent key 300 above the
    live ones made every live weight underflow and the row 0/0 (the av_teacher's loss went NaN)."""
    from edgemm.models.fusion import masked_softmax

    torch.manual_seed(0)
    scores = torch.randn(4, 2, 3, 3) * 5
    live = torch.tensor([[1., 1., 1.], [1., 0., 1.], [1., 1., 0.], [1., 0., 0.]])[:, None, None, :]
    reference = torch.softmax(scores.masked_fill(live == 0, float("-inf")), dim=-1)
    assert torch.allclose(masked_softmax(scores, live), reference, atol=1e-6)

    far = torch.tensor([[0.0, 300.0, -5.0]], requires_grad=True)
    weights = masked_softmax(far, torch.tensor([[1.0, 0.0, 1.0]]))
    assert torch.allclose(weights, torch.softmax(torch.tensor([[0.0, -5.0]]), -1)[:, [0, 0, 1]] * torch.tensor([[1, 0, 1]]))
    weights[0, 0].backward()
    assert torch.isfinite(far.grad).all() and far.grad[0, 1] == 0  # the absent key gets no gradient
