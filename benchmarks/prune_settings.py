"""Prune settings compared on fresh data: the prune stage re-run from a compress run's distilled student.

Usage:
    python benchmarks/prune_settings.py RUN_DIR [--seed 2] [--json out.json]
        [--config '{"ratio": 0.4, "steps": 1, "finetune_epochs": 6, "lr": 0.001}' ...]

For each ``--config`` (fields of ``PruneConfig``), loads the student the run's prune stage started
from and the run's teacher, runs the prune stage handler exactly as ``edgemm compress`` does
(distillation fine-tuning, teacher arithmetic as the recipe's ``auto``), and evaluates the result on
3000 unseen samples of another generator seed (95 % interval about ±0.9 pts), beside its size and
the stage's wall time. The defaults compare one-shot pruning fine-tuned at 1e-3 and at 3e-3, and a
milder 0.3 ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from benchmarks_common import heldout_set  # benchmarks/ is the script's directory

from edgemm.compress.prune import count_macs_params
from edgemm.compress.recipe import PruneConfig
from edgemm.compress.stages import StageContext, run_prune
from edgemm.data import open_dataset
from edgemm.train import evaluate, load_model
from edgemm.train.precision import autocast_dtype

DEFAULT_CONFIGS = (
    '{"ratio": 0.4, "steps": 1, "finetune_epochs": 6, "lr": 0.001}',
    '{"ratio": 0.4, "steps": 1, "finetune_epochs": 6, "lr": 0.003}',
    '{"ratio": 0.3, "steps": 1, "finetune_epochs": 6, "lr": 0.001}',
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an `edgemm compress --out` directory with a prune stage")
    p.add_argument("--config", action="append", help="PruneConfig fields as JSON (repeatable)")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    report = json.loads((a.run / "report.json").read_text())
    names = [s["name"] for s in report["stages"]]
    if "prune" not in names:
        sys.exit(f"{a.run}: the run has no prune stage (stages: {names})")
    stage_files = sorted((a.run / "stages").glob("*.pt"))
    start = stage_files[names.index("prune") - 1]  # the student the prune stage received
    teacher, ckpt = load_model(report["teacher"]["path"])
    cpu = torch.device("cpu")
    data = report["data"] if Path(report["data"]).exists() else "default"  # the run's set, else regenerate it
    splits = open_dataset(data, teacher.preprocess, labels=ckpt["labels"])
    unseen = heldout_set(teacher.preprocess, ckpt["labels"], seed=a.seed)
    ctx = StageContext(teacher=teacher, splits=splits, device=cpu, seed=0, log=lambda s: None,
                       teacher_amp=autocast_dtype("auto", cpu))
    rows = []
    for spec in a.config or DEFAULT_CONFIGS:
        student, _ = load_model(start)
        t0 = time.perf_counter()
        pruned = run_prune(student, ctx, PruneConfig(**json.loads(spec))).model
        seconds = time.perf_counter() - t0
        macs, params = count_macs_params(pruned)
        r = evaluate(pruned, unseen, ckpt["labels"])
        rows.append({"config": json.loads(spec), "params": params, "macs": macs, "accuracy": r.accuracy,
                     "accuracy_image_only": r.accuracy_image_only, "accuracy_audio_only": r.accuracy_audio_only,
                     "n": r.n, "seconds": seconds})
        print(f"{spec}: {r.accuracy:.3f} ({seconds:.0f} s)", file=sys.stderr)
    print(f"\nstart: {start}; held-out seed {a.seed}, n = {rows[0]['n']}, {torch.get_num_threads()} threads\n")
    print("| config | params | MACs | fused | image-only | audio-only | stage time |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{json.dumps(r['config'])}` | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.1f} M | {r['accuracy']:.3f} "
              f"| {r['accuracy_image_only']:.3f} | {r['accuracy_audio_only']:.3f} | {r['seconds']:.0f} s |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"run": str(a.run), "start": str(start), "seed": a.seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
