import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from edgemm.cli import main
from edgemm.train import load_model

pytestmark = pytest.mark.slow

RECIPE = """
student: test_gated
stages:
  - {type: distill, epochs: 2, batch_size: 8}
  - {type: prune, ratio: 0.5, steps: 2, finetune_epochs: 1}
  - {type: %s, %s}
"""


@pytest.fixture
def teacher(small_teacher):
    return small_teacher


def _recipe(tmp_path, quant="qat", args="epochs: 1, batch_size: 8"):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE % (quant, args))
    return path


def test_compress_end_to_end_writes_report_model_and_int8(teacher, small_manifest, tmp_path, capsys):
    """The default recipe's path (distil -> prune -> PTQ), then README's exports of what it made."""
    out, recipe = tmp_path / "out", _recipe(tmp_path, "ptq", "calibration_samples: 32")
    # test_gated cannot start from test_attention's weights: it starts from nothing, so distil (and the
    # scratch baseline beside it) run cold_min_steps: 3 epochs of this set's 5 steps instead of 2.
    recipe.write_text(recipe.read_text().replace("batch_size: 8}", "batch_size: 8, cold_min_steps: 13}", 1))
    args = ["compress", "--teacher", str(teacher), "--data", str(small_manifest), "--recipe", str(recipe),
            "--out", str(out), "--device", "cpu", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "starts from nothing: [distill] runs at least 13 steps (distill.cold_min_steps) instead of 0" in captured.err
    assert json.loads((out / "report.json").read_text()) == report
    assert [r["name"] for r in report["stages"]] == ["scratch", "distill", "prune", "ptq"]
    keys = {"name", "params", "macs", "accuracy", "accuracy_image_only", "accuracy_audio_only", "seconds", "fp32_bytes"}
    for row in [report["teacher"]] + report["stages"]:
        assert keys <= set(row)
        assert row["params"] > 0 and row["macs"] > 0
    prune_row, int8_row = report["stages"][2], report["stages"][3]
    assert prune_row["params"] < report["stages"][1]["params"]  # pruning removed parameters
    assert int8_row["int8_bytes"] < int8_row["fp32_bytes"] and int8_row["float_layers"] == ["frontend"]
    assert int8_row["calibration_samples"] == 32
    assert report["teacher"]["trained_now"] is False and report["teacher"]["seconds"] == 0.0  # given, not trained
    md = (out / "report.md").read_text()
    assert "| ptq |" in md and "95 % binomial interval" in md
    for row in [report["teacher"]] + report["stages"]:  # per-sample results agree with the accuracy
        assert len(row["test_correct"]) == row["n"] and row["test_correct"].count("1") == round(row["accuracy"] * row["n"])
    assert set(report["vs_scratch"]) == {"distill", "ptq"} and "McNemar exact p" in md
    # epochs per row from the recipe: prune fine-tunes after each of its 2 steps
    assert [r["epochs"] for r in report["stages"]] == [3, 3, 2, 0]
    assert "the final model 5 (distill 3, prune 2, ptq 0); the scratch baseline 3" in md

    raw = torch.load(out / "model.pt", weights_only=True)
    assert raw["quantization"]["file"] == "model_int8.pt2"
    model, _ = load_model(out / "model.pt")
    assert sum(p.numel() for p in model.parameters()) == int8_row["params"]
    # A fresh process: nothing imported beforehand registers the int8 ops for it.
    code = (f"from edgemm.train import load_model; from edgemm.models.int8 import load_int8\n"
            f"m, _ = load_model({str(out / 'model.pt')!r})\n"
            f"q = load_int8({str(out / 'model_int8.pt2')!r}, m.preprocess)\n"
            f"print(tuple(q(*m.example_inputs(3)[:2]).shape))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "(3, 10)", proc.stderr[-2000:]

    # The main path: the compressed checkpoint exports to int8 on every target and verifies. ONNX and
    # OpenVINO carry the PTQ program as it is (its calibrated scales), checked against its fake-quant
    # graph; TFLite is calibrated again from the float weights and says so. (A QAT program goes the
    # same way: test_xnnpack_qat_program_lowers_into_executorch_as_it_is.)
    from edgemm.deploy import export
    from edgemm.export.verify import Tolerance

    # OpenVINO goes README's way: `edgemm export RUN --target openvino` with no --precision exports what
    # compress made (int8, the QAT program) and says why.
    for target, precision in (("onnx", "int8"), ("openvino", None), ("tflite", "int8")):
        logs = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # TFLite recalibrates from float weights; on 48 samples of a one-epoch model one flipped
            # answer is 2.1 pts, so its int8 accuracy tolerance is widened to 5 pts here.
            tol = Tolerance(int8_accuracy_points=5.0) if target == "tflite" else Tolerance()
            m = export(out, target=target, precision=precision, verify_samples=48, calib_samples=32, tolerance=tol,
                       log=logs.append)
        assert not [w for w in caught if "training mode" in str(w.message)], target  # the int8 graph is in eval mode
        assert m.verified and m.precision == "int8" and m.location.is_dir(), (target, m.verification)
        if target == "tflite":
            assert m.quantization["method"] == "ptq" and m.verification["reference"] == "pytorch-fp32"
            assert ("the PTQ program's learned quantization does not carry into TFLite on this route: int8 was "
                    "calibrated post-training from the float weights") in m.source["notes"]
        else:
            assert m.quantization["method"] == "ptq" and m.verification["reference"] == "pytorch-fake-quant"
        if precision is None:
            assert any(line.startswith("precision: int8 (") and "is quantized" in line for line in logs), logs

    # a second run into the same directory must not silently overwrite it
    assert main(args[:-1]) == 1
    assert "pass --resume" in capsys.readouterr().err


def test_resume_after_a_killed_run_skips_finished_stages(teacher, small_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, "ptq", "calibration_samples: 16")
    cmd = [sys.executable, "-m", "edgemm.cli", "compress", "--teacher", str(teacher), "--data", str(small_manifest),
           "--recipe", str(recipe), "--out", str(out), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / "stages" / "01_distill.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "compress did not finish its distill stage in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report.json").exists(), "the run finished before it could be killed"
    finished = sorted(p.name for p in (out / "stages").glob("*.pt"))
    assert finished[:2] == ["00_scratch.pt", "01_distill.pt"]
    distill_row = torch.load(out / "stages" / "01_distill.pt", weights_only=True)["row"]

    assert main(cmd[3:] + ["--resume", "--json"]) == 0
    captured = capsys.readouterr()
    assert "[scratch] reused" in captured.err and "[distill] reused" in captured.err
    report = json.loads(captured.out)
    assert [r["name"] for r in report["stages"]] == ["scratch", "distill", "prune", "ptq"]
    assert report["stages"][1] == distill_row  # the finished stage was not redone
    assert report["stages"][3]["calibration_samples"] == 16


def test_resume_redoes_a_stage_whose_recipe_changed_and_all_after_it(teacher, small_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["compress", "--teacher", str(teacher), "--data", str(small_manifest), "--out", str(out), "--device", "cpu",
            "--no-baseline"]
    first = _recipe(tmp_path, "ptq", "calibration_samples: 16")
    assert main(base + ["--recipe", str(first)]) == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(first.read_text().replace("ratio: 0.5", "ratio: 0.25"))
    capsys.readouterr()
    assert main(base + ["--recipe", str(changed), "--resume", "--json"]) == 0
    captured = capsys.readouterr()
    assert "[distill] reused" in captured.err
    assert "[prune] recipe, teacher or seed changed" in captured.err
    assert "[ptq] reused" not in captured.err  # it depends on the re-run prune stage
    report = json.loads(captured.out)
    assert [r["name"] for r in report["stages"]] == ["distill", "prune", "ptq"]


def test_compress_with_few_labels_distils_on_the_unlabelled_rest(teacher, small_manifest, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("student: test_gated\nstages:\n  - {type: distill, epochs: 1, batch_size: 8}\n")
    out = tmp_path / "few"
    assert main(["compress", "--teacher", str(teacher), "--data", str(small_manifest), "--recipe", str(recipe),
                 "--out", str(out), "--device", "cpu", "--labels-fraction", "0.25", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seed"] == 3  # what a stage re-run needs to keep the same labels and draws
    rows = [line.split(",") for line in small_manifest.read_text().splitlines()[1:]]
    per_class = {}
    for r in rows:
        if r[3] == "train":
            per_class[r[2]] = per_class.get(r[2], 0) + 1
    t = report["transfer"]
    assert t["labels_fraction"] == 0.25 and t["train_labelled"] + t["train_unlabelled"] == sum(per_class.values())
    assert t["train_labelled"] == sum(max(1, round(0.25 * n)) for n in per_class.values())
    assert [r["name"] for r in report["stages"]] == ["scratch", "distill"]


def test_xnnpack_qat_program_lowers_into_executorch_as_it_is(teacher, small_manifest, tmp_path):
    """``quantizer: xnnpack``: the learned int8 program goes into the .pte unchanged (no recalibration),
    verified against its fake-quant graph; onnxruntime runs the same program as QDQ."""
    from edgemm.compress import compress
    from edgemm.deploy import export
    from edgemm.export.verify import Tolerance

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("student: test_gated\nstages:\n  - {type: qat, epochs: 1, batch_size: 8, quantizer: xnnpack}\n")
    out = tmp_path / "out"
    compress(teacher=teacher, data=small_manifest, recipe=recipe, out=out, device="cpu", baseline=False,
             log=lambda s: None)
    raw = torch.load(out / "model.pt", weights_only=True)
    assert raw["quantization"]["quantizer"] == "xnnpack" and raw["quantization"]["scheme"] == "pt2e-xnnpack-int8"
    sizes = {}
    for target, precision in (("executorch", "int8"), ("onnx", "int8")):
        m = export(out, target=target, precision=precision, verify_samples=48, calib_samples=32,
                   tolerance=Tolerance(int8_accuracy_points=5.0), out=tmp_path / f"{target}-{precision}.edgemm",
                   log=lambda s: None)
        assert m.verified, (target, m.verification)
        sizes[(target, precision)] = (m.location / m.files["model"]).stat().st_size
        if precision == "int8":
            assert m.quantization["method"] == "qat" and m.verification["reference"] == "pytorch-fake-quant", target
            assert not any("calibrated post-training" in n for n in m.source["notes"]), m.source["notes"]
    # int8 weights inside the .pte: XNNPACK's weights are opaque there, so the whole file is compared with
    # the float weights alone (the .pte of the same student in fp32 is larger than them; tests/export)
    model, _ = load_model(out / "model.pt")
    assert sizes[("executorch", "int8")] < 0.8 * 4 * sum(p.numel() for p in model.parameters())


BORN_AGAIN = """
student: test_gated
teacher: {model: test_gated, epochs: 1, min_steps: 3}
stages:
  - {type: distill, epochs: 1, batch_size: 8}
  - {type: ptq, calibration_samples: 16}
"""


def test_teacher_is_trained_as_edgemm_train_trains_and_teaches_itself(small_manifest, tmp_path, capsys):
    """compress alone trains the same teacher as `edgemm train` then `compress --teacher CKPT`; a student
    with the teacher's architecture starts from its weights, and the teacher doubles as the baseline."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(BORN_AGAIN)
    common = ["--data", str(small_manifest), "--device", "cpu"]
    assert main(["compress", *common, "--recipe", str(recipe), "--out", str(tmp_path / "c"), "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert "starts from the teacher's weights (born-again distillation)" in out.err
    assert "[distill] peak lr 0.0005 (distill.warm_lr) instead of 0.005" in out.err
    scratch = report["stages"][0]
    assert [r["name"] for r in report["stages"]] == ["scratch", "distill", "ptq"]
    assert scratch["same_as"] == "teacher" and scratch["test_correct"] == report["teacher"]["test_correct"]
    assert "| scratch (= teacher) |" in (tmp_path / "c" / "report.md").read_text()

    assert main(["train", "--model", "test_gated", *common, "--epochs", "1", "--min-steps", "3",
                 "--out", str(tmp_path / "t")]) == 0
    ours = torch.load(tmp_path / "t" / "best.pt", weights_only=True)["state_dict"]
    cached = torch.load(report["teacher"]["path"], weights_only=True)["state_dict"]
    assert ours.keys() == cached.keys() and all(torch.equal(ours[k], cached[k]) for k in ours)

    capsys.readouterr()
    assert main(["compress", *common, "--recipe", str(recipe), "--teacher", str(tmp_path / "t" / "best.pt"),
                 "--out", str(tmp_path / "c2"), "--no-baseline", "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given["teacher"]["test_correct"] == report["teacher"]["test_correct"]
    assert [r["test_correct"] for r in given["stages"]] == [r["test_correct"] for r in report["stages"][1:]]
