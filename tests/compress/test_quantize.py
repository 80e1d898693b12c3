import pytest
import torch

from edgemm.compress.distill import fit
from edgemm.compress.quantize import calibrate, convert, prepare_ptq, prepare_qat, quantized_layers, stored_bytes
from edgemm.compress.recipe import DistillConfig
from edgemm.data import open_dataset
from edgemm.models import create_model, list_models

pytestmark = pytest.mark.slow  # each convert costs ~25 s in torchao's conv-bn folding


@pytest.fixture(scope="module")
def splits(small_manifest):
    return open_dataset(small_manifest, create_model("test_gated").preprocess)


def _inputs(splits):
    items = [splits.train[i] for i in range(16)]
    return torch.stack([torch.from_numpy(x["image"]) for x in items]), torch.stack([torch.from_numpy(x["audio"]) for x in items])


@pytest.mark.parametrize("name", list_models("test_*"))
def test_qat_converts_to_a_real_int8_model_close_to_fake_quant(name, splits):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    fit(model, None, splits, DistillConfig(epochs=2, lr=3e-3, batch_size=8), log=lambda s: None)
    prepared = prepare_qat(model.eval())
    fit(prepared, None, splits, DistillConfig(epochs=1, lr=1e-4, batch_size=8), log=lambda s: None, keep_best=False)
    image, audio = _inputs(splits)
    with torch.no_grad():
        fake = prepared.eval()(image, audio)
        int8 = convert(prepared)
        real = int8(image, audio)
        # a modality can still be absent after quantization
        assert torch.isfinite(int8(image, audio, torch.ones(16), torch.zeros(16))).all()
    scale = fake.abs().max()
    err = (real - fake).abs().max()
    assert err < 0.1 * scale
    # Wherever the fake-quant model decides clearly (top-1 leads by 5 % of the logit scale),
    # the int8 model makes the same decision.
    top2 = fake.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 0.05 * scale
    assert decided.any()
    assert torch.equal(real.argmax(1)[decided], fake.argmax(1)[decided])
    layers = quantized_layers(int8)
    assert [k for k, v in layers.items() if not v] == ["frontend"]  # only the STFT stays float
    assert any(".q" in k or "proj" in k or "h_image" in k or "head" in k for k, v in layers.items() if v)
    assert stored_bytes(int8) < sum(t.numel() * 4 for t in list(model.parameters()) + list(model.buffers()))


@pytest.mark.parametrize("name", list_models("test_*"))
def test_ptq_calibrates_and_stays_close_to_float(name, splits):
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    fit(model, None, splits, DistillConfig(epochs=2, lr=3e-3, batch_size=8), log=lambda s: None)
    model.eval()
    prepared = prepare_ptq(model)
    assert calibrate(prepared, DataLoader(splits.train, batch_size=8), 24) == 24
    int8 = convert(prepared)
    image, audio = _inputs(splits)
    with torch.no_grad():
        ref, out = model(image, audio), int8(image, audio)
    assert (out - ref).abs().max() < 0.15 * ref.abs().max()
    assert [k for k, v in quantized_layers(int8).items() if not v] == ["frontend"]
