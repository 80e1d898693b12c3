import pytest
import torch

from edgemm.compress.distill import fit
from edgemm.compress.recipe import DistillConfig, parse_recipe
from edgemm.data import open_dataset
from edgemm.models import create_model
from edgemm.train import TrainConfig, evaluate, load_model, train
from edgemm.train.precision import autocast_dtype, native_bf16
from edgemm.vocab import Arithmetic

CPU = torch.device("cpu")


def _record_dtypes(model: torch.nn.Module, seen: list) -> list:
    """Records (dtype, batch size) of every Linear/Conv2d output of ``model``."""
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append((out.dtype, out.shape[0])))
             for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return hooks


def test_precision_resolves_per_device_and_rejects_unknown_values():
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype(Arithmetic.BF16, CPU) is torch.bfloat16
    assert autocast_dtype("auto", CPU) is (torch.bfloat16 if native_bf16(CPU) else None)
    assert native_bf16(CPU) == (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    with pytest.raises(ValueError, match=r"expected one of \['fp32', 'bf16', 'auto'\], got 'fp8'"):
        autocast_dtype("fp8", CPU)
    with pytest.raises(ValueError, match=r"TrainConfig.precision: 'half' is not one of \['fp32', 'bf16', 'auto'\]"):
        TrainConfig(precision="half")


def test_bf16_training_computes_in_bf16_and_keeps_fp32_weights(small_manifest, tmp_path, monkeypatch):
    seen: list = []
    conv_forward = torch.nn.Conv2d.forward

    def spy(self, x):  # train() builds its own model, so watch every Conv2d
        out = conv_forward(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    summary = train("test_gated", small_manifest, out=tmp_path / "bf16", progress=False,
                    config=TrainConfig(epochs=1, min_steps=0, batch_size=16, patience=0, threads=1, precision="bf16"))
    assert torch.bfloat16 in seen  # training steps ran their convolutions in bf16 ...
    assert torch.float32 in seen  # ... and evaluation stays float32
    ckpt = torch.load(tmp_path / "bf16" / "best.pt", weights_only=True)
    assert {v.dtype for v in ckpt["state_dict"].values() if v.is_floating_point()} == {torch.float32}
    assert ckpt["train_config"]["precision"] == "bf16"
    # The summary's test accuracy is the saved float32 model's, evaluated again here.
    model, _ = load_model(tmp_path / "bf16" / "best.pt")
    splits = open_dataset(small_manifest, model.preprocess, splits=("test",))
    assert summary["test"]["accuracy"] == evaluate(model, splits.test, ckpt["labels"]).accuracy


def test_teacher_runs_in_bf16_while_the_student_stays_fp32(small_manifest):
    splits = open_dataset(small_manifest, create_model("test_gated").preprocess)
    torch.manual_seed(0)
    teacher = create_model("test_attention", num_classes=10).eval()
    student = create_model("test_gated", num_classes=10)
    t_seen, s_seen = [], []
    _record_dtypes(teacher, t_seen)
    _record_dtypes(student, s_seen)
    result = fit(student, teacher, splits, DistillConfig(epochs=1, lr=3e-3, batch_size=8), log=lambda s: None, keep_best=False,
                 teacher_amp=torch.bfloat16)
    # training batches (8) run the teacher in bf16; fit's shape probe of the embeddings (batch 2) may not
    assert {d for d, n in t_seen if n == 8} == {torch.bfloat16}
    assert {d for d, _ in s_seen} == {torch.float32}
    assert torch.isfinite(torch.tensor(result.history[0]["loss"]))


def test_recipe_teacher_precision_defaults_to_edgemm_trains_and_is_validated():
    recipe = parse_recipe({"stages": [{"type": "distill"}]})
    assert recipe.teacher.precision is None and recipe.to_dict()["teacher"]["precision"] is None
    assert recipe.teacher.training_precision is Arithmetic.FP32  # edgemm train's default
    auto = parse_recipe({"teacher": {"precision": "auto"}, "stages": [{"type": "distill"}]}).teacher
    assert auto.training_precision is Arithmetic.AUTO and auto.train_config().precision == "auto"
    assert parse_recipe({"teacher": {"precision": "fp32"}, "stages": [{"type": "distill"}]}).teacher.precision \
        is Arithmetic.FP32
    with pytest.raises(ValueError, match=r"teacher.precision: 'fp16' is not one of \['fp32', 'bf16', 'auto'\]"):
        parse_recipe({"teacher": {"precision": "fp16"}, "stages": [{"type": "distill"}]})
