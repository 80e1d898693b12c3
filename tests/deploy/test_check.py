"""edgemm check: every stage on a tiny input, before any training; failures name the op or the line."""

import json
from pathlib import Path

import pytest

from edgemm.cli import main
from edgemm.deploy.check import check

pytestmark = pytest.mark.slow

USER = Path(__file__).resolve().parents[1] / "models" / "user" / "av_models.py"
STAGES = ["build + forward", "torch.export", "prune (DepGraph)", "int8 (PT2E)", "onnx", "openvino", "tflite",
          "executorch"]


EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "my_av_model.py"


@pytest.mark.parametrize("ref", [f"{USER}:no_flags", f"{USER}:logmel_net", f"{EXAMPLE}:build"])
def test_user_models_pass_every_stage(ref):
    report = check(ref, num_classes=4)
    assert [s.stage for s in report.stages] == STAGES
    assert report.ok, [s for s in report.stages if not s.ok]


def test_failures_name_the_operator_and_the_line(capfd):
    assert main(["check", f"{USER}:bessel", "--json"]) == 1
    out, err = capfd.readouterr()
    rows = {s["stage"]: s for s in json.loads(out)["stages"]}  # stdout is the JSON alone
    assert rows["torch.export"]["ok"] and rows["int8 (PT2E)"]["ok"]
    assert not rows["onnx"]["ok"] and "bessel_j0" in rows["onnx"]["operator"]
    assert not rows["tflite"]["ok"] and "bessel_j0" in rows["tflite"]["operator"]

    concat = {s.stage: s for s in check(f"{USER}:plain_concat", num_classes=4).stages}
    assert not concat["prune (DepGraph)"].ok and concat["onnx"].ok  # torch-pruning's concat limitation, caught early

    report = check(f"{USER}:data_dependent", num_classes=4)
    export = report.stages[1]
    assert not export.ok and export.where.startswith("av_models.py:") and "audio.abs().sum() > 0" in export.where
    assert not report.ok


def test_a_model_that_cannot_be_built_skips_the_rest(capsys):
    assert main(["check", f"{USER}:not_a_module"]) == 1
    table = capsys.readouterr().out
    assert "| ❌ | build + forward |" in table and "the factory returned str" in table
    assert table.count("skipped: the model could not be built") == len(STAGES) - 1
