"""Your own model under the one contract: references, declarations, absent modalities, checkpoints."""

from pathlib import Path

import pytest
import torch

from edgemm.models import create_model
from edgemm.models.contract import ContractModel, ModelReferenceError
from edgemm.train.checkpoint import atomic_torch_save, load_model, make_checkpoint

USER = Path(__file__).parent / "user" / "av_models.py"


def ref(name: str) -> str:
    return f"{USER}:{name}"


def test_a_file_reference_builds_the_model_with_its_declared_preprocessing():
    model = create_model(ref("resnet_waveform"), num_classes=5)
    assert isinstance(model, ContractModel) and model.flags and model.frontend is None
    assert model.preprocess.image.size == 64  # av_models.yaml beside the file
    assert model(*model.example_inputs(3)).shape == (3, 5)
    # Checkpoints store the reference with an absolute path, so they reload from any directory.
    assert model.edgemm_spec == {"name": f"{USER.resolve()}:resnet_waveform", "kwargs": {"num_classes": 5}}


def test_relative_and_module_references(monkeypatch):
    monkeypatch.chdir(USER.parent)
    assert create_model("av_models.py:no_flags", num_classes=3).edgemm_spec["name"] == f"{USER.resolve()}:no_flags"
    monkeypatch.syspath_prepend(str(USER.parent))
    model = create_model("av_models:no_flags", num_classes=3)  # an importable module
    assert model.edgemm_spec["name"] == "av_models:no_flags" and model(*model.example_inputs(2)).shape == (2, 3)


@pytest.mark.parametrize("reference, message", [
    ("missing_file.py:make", r"missing_file.py:make: model file .*missing_file.py not found"),
    (f"{USER}:nope", r"has no function 'nope' \(callables there: \[.*'no_flags'"),
    ("no.such.module:make", r"cannot import module 'no.such.module'"),
    (f"{USER}:not_a_module", r"the factory returned str, expected a torch.nn.Module"),
    (f"{USER}:", r"expected PATH.py:FUNCTION or package.module:FUNCTION"),
])
def test_bad_references_are_one_line_errors(reference, message):
    with pytest.raises((ModelReferenceError, ValueError), match=message):
        create_model(reference, num_classes=3)


def test_wrong_output_width_and_bad_sidecar_are_named(tmp_path):
    (tmp_path / "m.py").write_text("from torch import nn\n"
                                   "class M(nn.Module):\n"
                                   "    def forward(self, image, audio):\n"
                                   "        return image.mean(dim=(2, 3))\n"
                                   "def make(num_classes=10):\n    return M()\n")
    with pytest.raises(ValueError, match=r"m.py:make: forward must return logits \(B, num_classes=5\), got \(2, 3\)"):
        create_model(f"{tmp_path / 'm.py'}:make", num_classes=5)
    (tmp_path / "m.yaml").write_text("preprocess: {image: {size: 48}}\nnormalise: true\n")
    with pytest.raises(ValueError, match=r"m.yaml: unknown key\(s\) \['normalise'\]; valid keys are \['preprocess', 'audio_input'\]"):
        create_model(f"{tmp_path / 'm.py'}:make", num_classes=3)


def test_a_model_without_flags_sees_an_absent_modality_as_zeros():
    model = create_model(ref("no_flags"), num_classes=4).eval()
    image, audio, _, _ = model.example_inputs(2)
    image, audio = torch.randn_like(image), torch.randn_like(audio) * 0.1
    ones, zeros = torch.ones(2), torch.zeros(2)
    with torch.no_grad():
        muted = model(image, audio, ones, zeros)
        assert torch.equal(muted, model.model(image, torch.zeros_like(audio)))
        covered = model(image, audio, zeros, ones)
        assert torch.equal(covered, model.model(torch.zeros_like(image), audio))
        assert not torch.equal(muted, model(image, audio, ones, ones))


def test_a_logmel_model_gets_the_in_graph_frontend():
    model = create_model(ref("logmel_net"), num_classes=4).eval()
    seen = {}
    model.model.audio.register_forward_hook(lambda m, args, out: seen.update(shape=tuple(args[0].shape)))
    image, audio, ip, ap = model.example_inputs(2)
    with torch.no_grad():
        model(image, audio, ip, ap)
    cfg = model.preprocess.audio
    assert model.frontend is not None and seen["shape"] == (2, 1, cfg.n_mels, cfg.n_frames)


def test_checkpoint_of_a_user_model_reloads_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = create_model(ref("resnet_waveform"), num_classes=4).eval()
    path = atomic_torch_save(make_checkpoint(model, labels=list("abcd")), tmp_path / "m.pt")
    back, ckpt = load_model(path)
    x = model.example_inputs(2)
    with torch.no_grad():
        assert torch.equal(back(*x), model(*x))
    assert ckpt["model"]["name"].endswith("av_models.py:resnet_waveform")


def test_a_factory_returning_a_zoo_model_keeps_its_branches_for_distillation(tmp_path):
    # A student assembled from zoo parts: wrapped, it would hide forward_features and its branches,
    # and distillation would silently drop the embedding terms and the per-branch auxiliary heads.
    (tmp_path / "zoo_parts.py").write_text(
        "from edgemm.models import create_model\n"
        "def wide(**kw):\n"
        "    return create_model('test_gated', image_encoder_kw={'width': 0.5}, **kw)\n")
    from edgemm.models.av import AVModel
    from edgemm.train.unimodal import has_branches

    torch.manual_seed(0)
    model = create_model(f"{tmp_path / 'zoo_parts.py'}:wide", num_classes=3).eval()
    assert isinstance(model, AVModel) and not isinstance(model, ContractModel)
    assert hasattr(model, "forward_features") and has_branches(model)
    assert model.edgemm_spec["name"] == f"{(tmp_path / 'zoo_parts.py').resolve()}:wide"
    back, _ = load_model(atomic_torch_save(make_checkpoint(model, labels=list("abc")), tmp_path / "m.pt"))
    x = model.example_inputs(2)
    with torch.no_grad():
        assert torch.equal(back(*x), model(*x))
