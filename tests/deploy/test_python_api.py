"""The Python API with model instances: ``compress(student=module, teacher=module)`` and ``export(module)``."""

from pathlib import Path

import numpy as np
import pytest
import torch

from edgemm.compress import compress
from edgemm.compress.recipe import parse_recipe
from edgemm.deploy import export
from edgemm.models import create_model

USER = Path(__file__).resolve().parents[1] / "models" / "user" / "av_models.py"
RECIPE = parse_recipe({"stages": [{"type": "distill", "epochs": 1, "batch_size": 8}]})


def test_compress_takes_a_student_and_a_teacher_module(small_manifest, tmp_path):
    torch.manual_seed(0)
    student = create_model(f"{USER}:no_flags", num_classes=10)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    teacher = create_model(f"{USER}:logmel_net", num_classes=10)  # same preprocessing (av_models.yaml)
    report = compress(student=student, teacher=teacher, data=small_manifest, recipe=RECIPE, out=tmp_path / "c",
                      device="cpu", log=lambda s: None)
    assert [r["name"] for r in report["stages"]] == ["scratch", "distill"]
    assert report["recipe"]["student"] == f"{USER}:no_flags"
    assert any(not torch.equal(start[k], v) for k, v in student.state_dict().items())  # it trained the module given

    from edgemm.train import load_model

    model, ckpt = load_model(tmp_path / "c" / "model.pt")
    assert ckpt["model"]["name"] == f"{USER}:no_flags"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, student.state_dict()[k].cpu())


def test_the_scratch_baseline_starts_where_the_given_student_starts():
    from edgemm.compress.pipeline import _Student

    torch.manual_seed(1)
    given = create_model("test_gated", num_classes=10)
    built = _Student.build(RECIPE, given, 10, seed=0)
    fresh = built.start()
    assert fresh is not given and built.identity.startswith("test_gated@")
    for k, v in given.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
    with pytest.raises(ValueError, match="returns 10 logits, the data has 3 classes"):
        _Student.build(RECIPE, given, 3, seed=0)
    with pytest.raises(ValueError, match="create_model"):
        _Student.build(RECIPE, torch.nn.Linear(2, 2), 10, seed=0)


def test_export_takes_a_module_and_the_runtime_matches_it(small_manifest, tmp_path):
    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=10).eval()
    logs = []
    manifest = export(model, target="onnx", data=small_manifest, out=tmp_path / "b.edgemm", verify_samples=16,
                      log=logs.append)
    assert manifest.verified, manifest.verification
    assert (tmp_path / "b.edgemm.source.pt").is_file() and any("b.edgemm.source.pt" in s for s in logs)
    from edgemm.runtime import load

    session = load(manifest.location)
    image, audio, mi, ma = (t.numpy() for t in model.example_inputs(2))
    rng = np.random.default_rng(0)
    image = rng.standard_normal(image.shape).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(image), torch.from_numpy(audio), torch.from_numpy(mi), torch.from_numpy(ma))
    np.testing.assert_allclose(session.run(image, audio, mi, ma), want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"out": None, "data": "x"}, "pass out="),
    ({"out": "b.edgemm"}, "pass labels="),
    ({"out": "b.edgemm", "labels": ["a", "b"]}, "returns 10 logits for 2 labels"),
])
def test_export_of_a_module_says_what_it_needs(kwargs, message, tmp_path):
    model = create_model("test_gated", num_classes=10)
    if kwargs.get("out"):
        kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(ValueError, match=message):
        export(model, target="onnx", log=lambda s: None, **kwargs)
