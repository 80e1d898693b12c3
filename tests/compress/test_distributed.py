"""``edgemm compress`` under torchrun with 2 gloo processes: the teacher trained with DDP, the teacher
outputs computed in shards, every stage (QAT's graph module included) trained as DDP with replicas
that stay identical, rank 0 writing, ``--resume`` reusing every stage, and the same report as one process."""

import json
import subprocess
import sys

import pytest

from edgemm.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.ddp]

RECIPE = """
student: test_gated
teacher: {model: test_attention, epochs: 1, min_steps: 0, outputs: cached}
stages:
  - {type: distill, epochs: 2, batch_size: 8}
  - {type: prune, ratio: 0.5, steps: 1, finetune_epochs: 1}
  - {type: qat, epochs: 1, batch_size: 8}
"""


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "edgemm.cli", "compress", *args, "--device", "cpu", "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def _shape(value):
    """The structure of a report: keys and types, not values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__ if not isinstance(value, (int, float)) or isinstance(value, bool) else "number"


def test_compress_under_torchrun_matches_one_process(small_manifest, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    common = ["--data", str(small_manifest), "--recipe", str(recipe)]

    proc = _torchrun(*common, "--out", str(tmp_path / "ddp"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)  # rank 0 alone prints
    assert report["world_size"] == 2
    assert "training teacher test_attention" in proc.stderr  # trained here, under DDP
    assert "across 2 ranks" in proc.stderr  # the teacher outputs computed in shards
    assert [r["name"] for r in report["stages"]] == ["scratch", "distill", "prune", "qat"]
    assert all(r["replica_max_abs_diff"] == 0.0 for r in report["stages"])
    assert report["teacher_outputs"]["mode"] == "cached" and report["teacher_outputs"]["samples"] == 40
    assert json.loads((tmp_path / "ddp" / "report.json").read_text()) == report
    assert (tmp_path / "ddp" / "model_int8.pt2").is_file()

    again = _torchrun(*common, "--out", str(tmp_path / "ddp"), "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count("] reused ") == 4 and "starting" not in again.stderr
    assert [r["accuracy"] for r in json.loads(again.stdout)["stages"]] == [r["accuracy"] for r in report["stages"]]

    # One process, same recipe: the same report structure (DDP rows add the replica check) and the
    # same cached teacher and teacher outputs.
    assert main(["compress", *common, "--out", str(tmp_path / "single"), "--device", "cpu", "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["world_size"] == 1 and single["teacher"]["path"] == report["teacher"]["path"]
    assert single["teacher_outputs"]["key"] == report["teacher_outputs"]["key"]
    for row in report["stages"]:
        del row["replica_max_abs_diff"]
    assert _shape(single) == _shape(report)
