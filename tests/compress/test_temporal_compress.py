"""A temporal student compresses like a frame student: a frame teacher distils into it (answering for
each window's newest frame), it is pruned and quantized, and its int8 program exports and verifies."""

import pytest
import yaml

from edgemm.compress import compress
from edgemm.export import export


@pytest.mark.slow
def test_a_frame_teacher_distils_into_a_temporal_student_then_prune_and_ptq(temporal_run, trained, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"student": "tiny_temporal", "stages": [
        {"type": "distill", "epochs": 8, "min_steps": 0, "cold_min_steps": 0, "lr": 0.005},
        {"type": "prune", "ratio": 0.4, "finetune_epochs": 4, "finetune_min_steps": 0},
        {"type": "ptq", "calibration_samples": 32}]}))
    lines = []
    report = compress(teacher=trained("test_gated") / "best.pt", data=temporal_run / "clips", recipe=recipe,
                      out=tmp_path / "c", device="cpu", baseline=False, log=lines.append)
    assert any("the teacher is a frame model: it answers for the newest frame of each 3-frame window" in s
               for s in lines), lines
    rows = {r["name"]: r for r in report["stages"]}
    assert list(rows) == ["distill", "prune", "ptq"]
    assert rows["prune"]["params"] < rows["distill"]["params"]
    manifest = export(tmp_path / "c", target="openvino", precision="int8", out=tmp_path / "b.edgemm", verify_samples=16,
                      log=lambda s: None)
    assert manifest.precision == "int8" and manifest.quantization["method"] == "ptq"
    assert manifest.verification["status"] == "passed" and manifest.preprocess["frames"] == 3


@pytest.mark.slow
def test_a_temporal_teacher_hands_its_window_to_a_temporal_student_through_qat(temporal_run, tmp_path):
    """Born-again from a temporal checkpoint: the student built from the recipe takes the folder's frame
    rate as the teacher did (their inputs must match), trains int8-aware on mixed windows, and exports."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"student": "tiny_temporal", "stages": [
        {"type": "qat", "epochs": 2, "min_steps": 0}]}))
    report = compress(teacher=temporal_run / "run" / "best.pt", data=temporal_run / "clips", recipe=recipe,
                      out=tmp_path / "c", device="cpu", baseline=False, log=lambda s: None)
    assert [r["name"] for r in report["stages"]] == ["qat"]
    manifest = export(tmp_path / "c", target="onnx", precision="int8", out=tmp_path / "b.edgemm", verify_samples=16,
                      log=lambda s: None)
    assert manifest.quantization["method"] == "qat" and manifest.verification["status"] == "passed"
    assert manifest.preprocess["frames"] == 3 and manifest.preprocess["frame_rate"] == 15.0
