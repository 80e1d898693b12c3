"""`edgemm export` without --precision: what compress made (int8 for a quantized run), said in one line."""

import pytest

from edgemm.deploy.workflow import default_precision
from edgemm.devices import as_profile
from edgemm.models import create_model
from edgemm.train.checkpoint import atomic_torch_save, make_checkpoint
from edgemm.vocab import PrecisionChoice


def _checkpoint(path, **extra):
    atomic_torch_save(make_checkpoint(create_model("test_gated", num_classes=3), labels=["a", "b", "c"], **extra), path)
    return path


def test_a_quantized_compress_run_exports_int8_and_says_why(tmp_path):
    quant = {"scheme": "pt2e-x86-int8", "quantizer": "x86", "file": "model_int8.pt2", "stage": "qat"}
    _checkpoint(tmp_path / "model.pt", quantization=quant)
    choice, why = default_precision(tmp_path, None)  # a run directory, as README's flow passes it
    assert choice is PrecisionChoice.INT8
    assert "model.pt is quantized: it carries the int8 program edgemm compress trained, model_int8.pt2" in why
    assert "--precision fp32 exports the float model" in why


def test_a_float_checkpoint_exports_fp32_and_a_profile_decides_first(tmp_path):
    path = _checkpoint(tmp_path / "best.pt", quantization=None)
    choice, why = default_precision(path, None)
    assert choice is PrecisionChoice.FP32 and "is a float checkpoint" in why
    profile = as_profile("raspberry-pi-5")
    choice, why = default_precision(path, profile)
    assert choice is PrecisionChoice(profile.precision) and why == "device profile raspberry-pi-5"


def test_no_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no `edgemm compress` output at runs/compress/model.pt"):
        default_precision(None, None)
