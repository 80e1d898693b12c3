"""Pretrained starting points: torchvision weight names resolved from torch hub's local cache, offline."""

import pytest
import torch

from edgemm.compress.teachers import teacher_init_kwargs
from edgemm.models import create_model
from edgemm.models.pretrained import WeightsNotFound, resolve_weights

URL_FILE = "mobilenet_v3_small-047dcff4.pth"  # what torchvision downloads for IMAGENET1K_V1


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and no network: downloads must not even be tried."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("EDGEMM_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def _cache_tiny_imagenet_weights(hub):
    """Stand-in "ImageNet" weights: a real mobilenet_v3_small state dict, saved where torchvision would put it."""
    from torchvision.models import mobilenet_v3_small

    torch.manual_seed(7)
    src = mobilenet_v3_small()
    hub.mkdir(parents=True)
    torch.save(src.state_dict(), hub / URL_FILE)
    return src


def test_a_missing_weights_name_offline_says_which_file_to_put_where(hub):
    with pytest.raises(WeightsNotFound) as e:
        create_model("av_student_mnv3", image_encoder_kw={"pretrained": "IMAGENET1K_V1"})
    msg = str(e.value)
    assert "offline" in msg and f"https://download.pytorch.org/models/{URL_FILE}" in msg and str(hub / URL_FILE) in msg


def test_unknown_weight_names_list_the_real_ones(hub):
    with pytest.raises(ValueError, match=r"mobilenet_v3_small has no pretrained weights 'IMAGENET22K'.*IMAGENET1K_V1"):
        resolve_weights("mobilenet_v3_small", "IMAGENET22K")


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"])
def test_a_weights_name_loads_the_cached_file_without_network(hub, name):
    src = _cache_tiny_imagenet_weights(hub)
    model = create_model("av_student_mnv3", image_encoder_kw={"pretrained": name})
    for k in ("features.0.0.weight", "features.12.1.running_var"):
        torch.testing.assert_close(model.image_encoder.state_dict()[k], src.state_dict()[k], rtol=0, atol=0)


def test_auto_uses_imagenet_weights_only_when_they_are_on_this_machine(hub):
    assert teacher_init_kwargs("av_student_mnv3", "auto") == {}
    assert teacher_init_kwargs("av_student_mnv3", "none") == {}
    _cache_tiny_imagenet_weights(hub)
    assert teacher_init_kwargs("av_student_mnv3", "auto") == {"image_encoder_kw": {"pretrained": "DEFAULT"}}


def test_a_checkpoint_of_a_pretrained_start_reloads_without_the_weights_file(hub, tmp_path):
    from edgemm.train.checkpoint import atomic_torch_save, load_model, make_checkpoint

    _cache_tiny_imagenet_weights(hub)
    model = create_model("test_gated", image_encoder_kw={"width": 1.0, "pretrained": "IMAGENET1K_V1"})
    ckpt = make_checkpoint(model, labels=["a", "b", "c", "d"])
    assert ckpt["model"]["kwargs"]["image_encoder_kw"] == {"width": 1.0}  # merged with the zoo's, minus the start
    assert ckpt["model"]["initialised_from"] == {"image_encoder_kw": "IMAGENET1K_V1"}
    atomic_torch_save(ckpt, tmp_path / "m.pt")
    (hub / URL_FILE).unlink()
    again, _ = load_model(tmp_path / "m.pt")
    torch.testing.assert_close(again.image_encoder.features[0][0].weight, model.image_encoder.features[0][0].weight)


def test_train_pretrained_flag_fails_in_one_line_naming_the_file(hub, small_manifest, tmp_path, capsys):
    from edgemm.cli import main

    assert main(["train", "--model", "test_gated", "--data", str(small_manifest), "--out", str(tmp_path / "r"),
                 "--pretrained"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mobilenet_v3_small weights DEFAULT are not in the local cache" in err[0]


def test_the_plain_cnn_student_loads_a_local_file_and_explains_it_has_no_named_weights(tmp_path):
    src = create_model("av_student")
    torch.save(src.image_encoder.state_dict(), tmp_path / "cnn.pth")
    model = create_model("av_student", image_encoder_kw={"pretrained": str(tmp_path / "cnn.pth")})
    torch.testing.assert_close(model.image_encoder.features[0].weight, src.image_encoder.features[0].weight)
    with pytest.raises(ValueError, match="cnn_small has no published weights named 'DEFAULT'.*av_student_mnv3"):
        create_model("av_student", image_encoder_kw={"pretrained": "DEFAULT"})


# ---------------------------------------------------------------- Hugging Face hub backbones ----
def _tiny_hf_resnet(seed: int = 3):
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(seed)
    return ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_channels=3))


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache, offline."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"


def _put_in_hub_cache(cache, repo: str, model) -> None:
    """Lays a save_pretrained copy out as huggingface_hub's cache does: snapshots/<commit>/ and refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    model.save_pretrained(root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)


def _same_weights(encoder, model) -> bool:
    ours = encoder.backbone.state_dict()
    return all(torch.equal(ours[k], v) for k, v in model.state_dict().items())


def test_a_hub_backbone_loads_from_a_local_directory_and_from_its_id_offline(tmp_path, hf_cache):
    src = _tiny_hf_resnet()
    src.save_pretrained(tmp_path / "local")
    _put_in_hub_cache(hf_cache, "edgemm-test/tiny-resnet", src)
    for spec in (str(tmp_path / "local"), "edgemm-test/tiny-resnet"):
        model = create_model("test_gated", image_encoder="hf", image_encoder_kw={"model": spec}).eval()
        assert model.image_encoder.out_dim == 16 and _same_weights(model.image_encoder, src)
        image, audio, _, _ = model.example_inputs(2)
        assert model(torch.randn_like(image), audio).shape == (2, 4)


def test_a_hub_backbone_checkpoint_reloads_with_its_trained_weights(tmp_path, hf_cache):
    from edgemm.train.checkpoint import load_model, make_checkpoint

    src = _tiny_hf_resnet()
    src.save_pretrained(tmp_path / "local")
    model = create_model("test_gated", image_encoder="hf", image_encoder_kw={"model": str(tmp_path / "local")})
    with torch.no_grad():
        model.image_encoder.backbone.embedder.embedder.convolution.weight.add_(1.0)  # "training"
    torch.save(make_checkpoint(model, labels=list("abcd")), tmp_path / "ckpt.pt")
    loaded, ckpt = load_model(tmp_path / "ckpt.pt")
    assert ckpt["model"]["initialised_from"] == {"image_encoder_kw": str(tmp_path / "local")}
    assert ckpt["model"]["kwargs"]["image_encoder_kw"]["weights"] is False
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_a_hub_id_missing_offline_says_what_to_download_and_where(hf_cache):
    with pytest.raises(WeightsNotFound) as e:
        create_model("test_gated", image_encoder="hf", image_encoder_kw={"model": "edgemm-test/absent"})
    msg = str(e.value)
    assert "offline" in msg and "hf download edgemm-test/absent" in msg and str(hf_cache / "models--edgemm-test--absent") in msg
    with pytest.raises(WeightsNotFound, match="neither a local directory nor a hub id"):
        create_model("test_gated", image_encoder="hf", image_encoder_kw={"model": "./nowhere"})


def test_train_cli_starts_the_image_branch_from_a_hub_backbone(tmp_path, hf_cache, small_manifest):
    from edgemm.cli import main
    from edgemm.train.checkpoint import load_checkpoint

    _put_in_hub_cache(hf_cache, "edgemm-test/tiny-resnet", _tiny_hf_resnet())
    assert main(["train", "--model", "test_gated", "--data", str(small_manifest), "--out", str(tmp_path / "run"),
                 "--pretrained", "hf:edgemm-test/tiny-resnet", "--epochs", "1", "--min-steps", "0"]) == 0
    spec = load_checkpoint(tmp_path / "run" / "best.pt")["model"]
    assert spec["kwargs"]["image_encoder"] == "hf"
    assert spec["initialised_from"] == {"image_encoder_kw": "edgemm-test/tiny-resnet"}
