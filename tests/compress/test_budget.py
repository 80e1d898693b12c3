"""``edgemm compress --latency-budget``: prune in steps, each step exported and timed on a backend."""

import json

import pytest
import torch

from edgemm.cli import main
from edgemm.compress.budget import LatencyBudget, budget_schedule, prune_to_budget
from edgemm.compress.prune import count_macs_params, frontend_macs
from edgemm.compress.recipe import PruneConfig
from edgemm.devices import load_profile, parse_profile
from edgemm.models import create_model

RECIPE = """
student: test_gated
stages:
  - {type: distill, epochs: 1, batch_size: 8}
  - {type: prune, ratio: 0.5, steps: 1, finetune_epochs: 1}
"""

PROFILE = """
name: test-onnx-cpu
description: onnxruntime fp32 on this machine's CPU, one thread
target: onnx
precision: fp32
backend: onnxruntime
threads: 1
input_size: [160, 120]
latency_budget_ms: 1000
"""


@pytest.fixture
def teacher(small_teacher):
    return small_teacher


@pytest.fixture
def files(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "cpu.yaml").write_text(PROFILE)
    return tmp_path


def _compress(teacher, data, files, *extra):
    return ["compress", "--teacher", str(teacher), "--data", str(data), "--recipe", str(files / "recipe.yaml"),
            "--out", str(files / "out"), "--device", "cpu", "--no-baseline", "--device-profile", str(files / "cpu.yaml"),
            "--budget-runs", "20", *extra]


class MacsProbe:
    """Times nothing: "latency" is the model's MACs in millions, so the stop rule is checked exactly."""

    def __init__(self, budget):
        self.budget, self.where, self.seen = budget, "MACs", []

    def measure(self, model):
        macs = count_macs_params(model)[0] / 1e6
        self.seen.append(macs)
        return {"latency_ms": macs, "p50_ms": macs, "precision": "fp32", "backend": "none", "provider": "none"}

    def met(self, m):
        return m["latency_ms"] <= self.budget.ms


def test_pruning_stops_at_the_first_step_within_the_budget():
    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=4)
    full = count_macs_params(model)[0] / 1e6
    fixed = frontend_macs(model) / 1e6  # the frontend's MACs, which pruning cannot touch
    device = parse_profile({"name": "x", "description": "x", "target": "onnx", "precision": "fp32",
                            "backend": "onnxruntime"}, "test")
    # 60 % of the prunable MACs: one step of 0.2 keeps ~64 % of them, two ~36 %, four ~4 %
    budget = fixed + 0.6 * (full - fixed)
    probe = MacsProbe(LatencyBudget(budget, device, max_ratio=0.8, step_ratio=0.2))
    tuned = []
    trace, table = prune_to_budget(model, PruneConfig(ratio=0.5, round_to=1), probe, log=lambda s: None,
                            finetune=lambda m, step: tuned.append(step) or 0.5)
    assert [r["step"] for r in trace][0] == 0 and trace[0]["ratio"] == 0.0 and not trace[0]["met"]
    met = [r["step"] for r in trace if r["met"]]
    assert met == [trace[-1]["step"]]  # the last step is the first within the budget ...
    assert all(r["latency_ms"] > budget for r in trace[:-1])  # ... and every earlier one was over it
    assert trace[-1]["step"] < 4 and tuned == list(range(trace[-1]["step"]))  # stopped early; each step fine-tuned
    assert count_macs_params(model)[0] / 1e6 == trace[-1]["macs"] / 1e6 == trace[-1]["latency_ms"]
    assert [r["val_accuracy"] for r in trace[1:]] == [0.5] * (len(trace) - 1) and table is None


def test_budget_schedule():
    device = load_profile("x86-laptop-cpu")
    cfg = budget_schedule(PruneConfig(ratio=0.4, audio_ratio=0.2, steps=1), LatencyBudget(5, device, max_ratio=0.8,
                                                                                           step_ratio=0.25))
    assert (cfg.ratio, cfg.steps, cfg.audio_ratio, cfg.image_ratio) == (0.8, 4, 0.4, None)
    with pytest.raises(ValueError, match="step_ratio"):
        LatencyBudget(5, device, max_ratio=0.3, step_ratio=0.5)
    with pytest.raises(ValueError, match="positive number of milliseconds"):
        LatencyBudget(0, device)




@pytest.mark.slow
def test_a_budget_the_student_meets_prunes_nothing(teacher, small_manifest, files, capsys):
    assert main(_compress(teacher, small_manifest, files, "--latency-budget", "--json")) == 0  # the profile's 1000 ms
    report = json.loads(capsys.readouterr().out)
    lb = report["latency_budget"]
    assert lb["ms"] == 1000 and lb["device_profile"] == "test-onnx-cpu" and lb["measured_on"].startswith("this machine")
    assert [s["step"] for s in lb["steps"]] == [0] and lb["steps"][0]["met"] and lb["met"]
    assert lb["steps"][0]["precision"] == "fp32" and lb["steps"][0]["backend"] == "onnxruntime"
    distill, pruned = report["stages"]
    assert pruned["params"] == distill["params"]  # nothing pruned
    assert lb["final"]["met"] and lb["final"]["latency_ms"] > 0
    assert "**Latency budget**" in (files / "out" / "report.md").read_text()


@pytest.mark.slow
def test_a_budget_out_of_reach_prunes_to_the_limit_and_fails(teacher, small_manifest, files, capsys):
    args = _compress(teacher, small_manifest, files, "--latency-budget", "0.0001", "--max-ratio", "0.4",
                     "--step-ratio", "0.2", "--budget-stage", "inference")
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "misses the 0.0001 ms budget" in captured.err and str(files / "out") in captured.err
    report = json.loads((files / "out" / "report.json").read_text())
    lb = report["latency_budget"]
    steps = lb["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2] and not any(s["met"] for s in steps) and not lb["met"]
    assert [s["ratio"] for s in steps] == [0.0, 0.2, 0.4]
    assert steps[0]["params"] > steps[1]["params"] > steps[2]["params"]
    assert lb["reached_ms"] == min(s["latency_ms"] for s in steps) and lb["stage"] == "inference"
    assert report["stages"][-1]["params"] == steps[-1]["params"]  # the model kept is the last step's
    assert (files / "out" / "model.pt").is_file()
    md = (files / "out" / "report.md").read_text()
    assert "| 2 | 0.4 |" in md and "OVER the budget" in md
    # the budget is part of what the prune stage depends on: a new budget runs it again on --resume
    assert main(args[:-8] + ["--latency-budget", "1000", "--resume", "--json"]) == 0
    assert "[prune] recipe, teacher or seed changed" in capsys.readouterr().err


def test_budget_flags_are_checked(files, capsys):
    assert main(["compress", "--latency-budget", "5", "--out", str(files / "o")]) == 2
    assert "--device-profile" in capsys.readouterr().err
    assert main(["compress", "--remote", "ssh://x", "--out", str(files / "o")]) == 2
    assert "--latency-budget" in capsys.readouterr().err
