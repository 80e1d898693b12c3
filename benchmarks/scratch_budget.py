"""How far the student gets from labels alone: the scratch baseline at more epochs, full and pruned.

`edgemm compress` compares distillation with the student trained from scratch for the *distill
stage's* epochs. The final model trains longer than that (distill + prune fine-tuning + QAT), so
this script asks the question a user should ask before paying for a teacher: what do the same
labels give the student, and the final (pruned) architecture freshly initialised, with as many
epochs as the final model had? Same learning rate, batch size, augmentation and modality dropout
as the run's distill stage; scored on a held-out generated set like heldout_eval.py.

Usage:
    python benchmarks/scratch_budget.py RUN_DIR [--epochs 11,19] [--arch full,final]
        [--seed 2] [--samples-per-class 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
from benchmarks_common import cpu_name, heldout_set, intact_mask  # benchmarks/ is the script's directory
from torch import nn

from edgemm.compress.distill import fit
from edgemm.compress.prune import count_macs_params
from edgemm.compress.recipe import DistillConfig, StageType, parse_recipe
from edgemm.data import open_dataset
from edgemm.models import create_model
from edgemm.train import load_model
from edgemm.train.evaluation import predict_logits


def fresh_like(model: nn.Module, spec: dict, seed: int) -> nn.Module:
    """``model``'s (pruned) architecture with new weights from the registered model's own initialiser.

    ``spec`` is the checkpoint's ``model`` entry (registry name and kwargs).

    Each tensor a pruning shrank is the leading slice of the full-width model's fresh tensor,
    rescaled for the smaller fan-in; which channels are kept does not matter for random weights.
    """
    torch.manual_seed(seed)
    full = create_model(spec["name"], **spec["kwargs"]).state_dict()
    fresh = {}
    for key, pruned in model.state_dict().items():
        t = full[key]
        if t.shape != pruned.shape:
            t = t[tuple(slice(0, n) for n in pruned.shape)]
            if t.is_floating_point() and t.ndim > 1:
                t = t * math.sqrt(full[key][0].numel() / max(1, t[0].numel()))
        fresh[key] = t
    out = copy.deepcopy(model)
    out.load_state_dict(fresh)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an `edgemm compress --out` directory")
    p.add_argument("--epochs", default="11,19", help="comma-separated epoch budgets")
    p.add_argument("--arch", default="full,final", help="full (the recipe's student), final (the run's pruned architecture)")
    p.add_argument("--seed", type=int, default=2, help="generator seed of the held-out set")
    p.add_argument("--samples-per-class", type=int, default=300, help="size of the held-out set")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    report = json.loads((a.run / "report.json").read_text())
    recipe = parse_recipe(report["recipe"])
    distill = next(s.config for s in recipe.stages if s.type is StageType.DISTILL)
    final, ckpt = load_model(a.run / "model.pt")
    labels = ckpt["labels"]
    splits = open_dataset(report["data"], final.preprocess, labels=labels)
    unseen = heldout_set(final.preprocess, labels, seed=a.seed, samples_per_class=a.samples_per_class)
    intact = intact_mask(unseen, seed=a.seed, samples_per_class=a.samples_per_class)
    rows = []
    for arch in a.arch.split(","):
        for epochs in (int(e) for e in a.epochs.split(",")):
            if arch == "full":
                torch.manual_seed(0)  # as the pipeline seeds its scratch baseline
                model = create_model(recipe.student, num_classes=len(labels))
            elif arch == "final":
                model = fresh_like(final, ckpt["model"], seed=0)
            else:
                raise SystemExit(f"--arch: expected full or final, got {arch!r}")
            t0 = time.perf_counter()
            budget = DistillConfig(epochs=epochs, lr=distill.lr, batch_size=distill.batch_size,
                                   modality_dropout=distill.modality_dropout, mixup=distill.mixup)
            fit(model, None, splits, budget, seed=0, log=lambda s: None)
            seconds = time.perf_counter() - t0
            logits, y = predict_logits(model, unseen)
            right = logits["fused"].argmax(1) == y
            macs, params = count_macs_params(model)
            rows.append({"arch": arch, "epochs": epochs, "params": params, "macs": macs, "seconds": seconds,
                         "accuracy": float(right.mean()), "accuracy_intact": float(right[intact].mean()),
                         "n": len(y), "n_intact": int(intact.sum())})
            r = rows[-1]
            print(f"{arch:>5} {epochs:>3} epochs  {params / 1e6:.3f} M params  held-out {r['accuracy']:.4f} "
                  f"(intact {r['accuracy_intact']:.4f})  {seconds:.0f} s", flush=True)
    print(f"\n| student from scratch | params | MACs | epochs | held-out fused (n = {rows[0]['n']}) | intact |"
          "\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arch']} | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.1f} M | {r['epochs']} | "
              f"{r['accuracy']:.3f} | {r['accuracy_intact']:.3f} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"run": str(a.run), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                                      "heldout_seed": a.seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
