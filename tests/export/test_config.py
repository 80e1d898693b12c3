"""``ExportConfig``: an export's choices parsed and checked once, wherever they enter."""

import math

import pytest

from edgemm.cli import main
from edgemm.export import ExportConfig, export
from edgemm.vocab import FrontendPlace, Precision, PrecisionChoice, Target


def test_strings_become_enums_and_max_drop_becomes_the_tolerance():
    c = ExportConfig(target="tflite", precision="int8", frontend="runtime", max_drop=2.5)
    assert (c.target, c.precision, c.frontend) == (Target.TFLITE, PrecisionChoice.INT8, FrontendPlace.RUNTIME)
    assert c.concrete is Precision.INT8 and c.tolerance.int8_accuracy_points == 2.5


@pytest.mark.parametrize("fields, message", [
    ({"target": "onnx", "precision": "int4"}, "--precision"),
    ({"target": "coreml"}, "--target"),
    ({"target": "onnx", "frontend": "gpu"}, "--frontend"),
    ({"target": "executorch", "precision": "fp16"}, "executorch supports ['fp32', 'int8'], not fp16"),
    ({"target": "onnx", "precision": "fp32", "explain": True}, "--explain / --max-drop: apply to int8 exports, not fp32"),
    ({"target": "onnx", "precision": "int8", "max_drop": -1.0}, "--max-drop must be a finite number"),
    ({"target": "onnx", "precision": "int8", "max_drop": math.inf}, "--max-drop must be a finite number"),
    ({"target": "onnx", "verify_samples": 0}, "verify_samples must be an integer >= 1"),
    ({"target": "onnx", "precision": "auto", "verify": False}, "--no-verify: --precision auto keeps the fastest"),
])
def test_bad_choices_name_the_option(fields, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ExportConfig(**fields)


def test_auto_keeps_the_int8_only_choices_for_its_int8_candidate():
    auto = ExportConfig(target="onnx", precision="auto", explain=True, max_drop=3.0, calib_samples=32)
    int8, fp32 = auto.at("int8"), auto.at(Precision.FP32)
    assert int8.explain and int8.max_drop == 3.0 and int8.calib_samples == 32
    assert not fp32.explain and fp32.max_drop is None and fp32.precision is PrecisionChoice.FP32
    with pytest.raises(ValueError, match="'auto' is measured on a backend"):
        auto.concrete  # noqa: B018 (the property raises)


def test_export_takes_a_config_or_its_fields_not_both(tmp_path):
    with pytest.raises(TypeError, match="not both"):
        export(tmp_path / "best.pt", ExportConfig(target="onnx"), precision="int8")


def test_no_verify_under_auto_is_an_error_not_silently_dropped(tmp_path, capsys):
    code = main(["export", str(tmp_path / "best.pt"), "--target", "onnx", "--precision", "auto", "--no-verify"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "--no-verify: --precision auto" in err, err
