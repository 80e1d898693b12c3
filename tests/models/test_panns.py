"""PANNs audio CNNs: published checkpoints load by their own parameter names, from a file or the hub cache."""

import pytest
import torch

from edgemm.models import create_model
from edgemm.models.pretrained import WeightsNotFound

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def _published_checkpoint(path, variant="panns_cnn6", seed=5):
    """A file laid out as PANNs releases them: {"model": state dict} with its STFT, mel and AudioSet layers."""
    from edgemm.models.panns import PannsCNN

    torch.manual_seed(seed)
    net = PannsCNN(variant, n_mels=64)
    state = dict(net.state_dict())
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(257, 1, 512)
    state["logmel_extractor.melW"] = torch.randn(257, 64)
    state["fc_audioset.weight"] = torch.randn(527, net.out_dim)
    state["fc_audioset.bias"] = torch.randn(527)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"iteration": 1, "model": state}, path)
    return net


def _assert_same(encoder, net):
    for k, v in net.state_dict().items():
        assert torch.equal(encoder.state_dict()[k], v), k


def test_a_published_checkpoint_loads_and_the_model_trains_and_reloads_without_it(tmp_path):
    from edgemm.train.checkpoint import load_model, make_checkpoint

    net = _published_checkpoint(tmp_path / "Cnn6_mAP=0.343.pth")
    model = create_model("av_student", audio_encoder="panns_cnn6",
                         audio_encoder_kw={"pretrained": str(tmp_path / "Cnn6_mAP=0.343.pth")})
    _assert_same(model.audio_encoder, net)
    image, audio, _, _ = model.example_inputs(4)
    loss = model(torch.randn_like(image), torch.randn_like(audio) * 0.1).logsumexp(1).mean()
    loss.backward()
    assert model.audio_encoder.conv_block1.conv1.weight.grad.abs().sum() > 0
    torch.save(make_checkpoint(model, labels=[str(i) for i in range(10)]), tmp_path / "ckpt.pt")
    (tmp_path / "Cnn6_mAP=0.343.pth").unlink()  # the checkpoint does not need the starting file
    loaded, _ = load_model(tmp_path / "ckpt.pt")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_the_wrong_variant_or_mel_count_is_a_one_line_error(tmp_path):
    _published_checkpoint(tmp_path / "cnn6.pth")
    with pytest.raises(ValueError,
                       match=r"cnn6.pth: weights do not fit panns_cnn10 \(PANNs files name their model: Cnn6 / Cnn10 / Cnn14\)"):
        create_model("av_student", audio_encoder="panns_cnn10", audio_encoder_kw={"pretrained": str(tmp_path / "cnn6.pth")})
    with pytest.raises(ValueError, match="expect 64 mel bands.*n_mels=40"):
        create_model("av_student", audio_encoder="panns_cnn6", audio_encoder_kw={"pretrained": str(tmp_path / "cnn6.pth")},
                     preprocess={"audio": {"n_mels": 40}})


def test_a_hub_file_resolves_offline_from_the_cache_or_says_what_to_download(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = cache / "models--edgemm-test--panns"
    net = _published_checkpoint(root / "snapshots" / COMMIT / "Cnn6_mAP=0.343.pth")
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    model = create_model("av_student", audio_encoder="panns_cnn6",
                         audio_encoder_kw={"pretrained": "hf:edgemm-test/panns/Cnn6_mAP=0.343.pth"})
    _assert_same(model.audio_encoder, net)
    with pytest.raises(WeightsNotFound) as e:
        create_model("av_student", audio_encoder="panns_cnn6",
                     audio_encoder_kw={"pretrained": "hf:edgemm-test/other/Cnn6.pth"})
    assert "offline" in str(e.value) and "hf download edgemm-test/other Cnn6.pth" in str(e.value)
    assert str(cache / "models--edgemm-test--other") in str(e.value)


def test_train_cli_swaps_in_a_pretrained_panns_branch(tmp_path, small_manifest):
    from edgemm.cli import main
    from edgemm.train.checkpoint import load_checkpoint

    _published_checkpoint(tmp_path / "Cnn6.pth")
    assert main(["train", "--model", "av_student", "--data", str(small_manifest), "--out", str(tmp_path / "run"),
                 "--audio-encoder", "panns_cnn6", "--pretrained-audio", str(tmp_path / "Cnn6.pth"),
                 "--epochs", "1", "--min-steps", "0"]) == 0
    spec = load_checkpoint(tmp_path / "run" / "best.pt")["model"]
    assert spec["kwargs"]["audio_encoder"] == "panns_cnn6"
    assert spec["initialised_from"] == {"audio_encoder_kw": str(tmp_path / "Cnn6.pth")}
