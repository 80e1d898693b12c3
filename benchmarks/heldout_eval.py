"""Every model state of an `edgemm compress` run, evaluated on a fresh generated set (another seed).

The default set's test split has 300 samples (95 % interval about ±3 pts); the generator can draw
any number of unseen samples, so this gives comparisons between stages that are not lost in noise.
Each stage is also tested against the scratch baseline, paired on the same samples (exact McNemar).
Fused accuracy is also given on the samples with both modalities intact: on the 10 % with one
modality replaced by noise, the best possible answer is a coin flip between two classes.

Usage:
    python benchmarks/heldout_eval.py RUN_DIR [--seed 2] [--samples-per-class 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from benchmarks_common import heldout_set, intact_mask  # benchmarks/ is the script's directory

from edgemm.compress.report import correct_string, mcnemar
from edgemm.metrics import metrics
from edgemm.models.int8 import load_int8
from edgemm.train import load_model
from edgemm.train.evaluation import predict_logits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an `edgemm compress --out` directory")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--samples-per-class", type=int, default=300)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    report = json.loads((a.run / "report.json").read_text())
    states = [("teacher", Path(report["teacher"]["path"]))]
    states += [(p.stem.split("_", 1)[1], p) for p in sorted((a.run / "stages").glob("*.pt"))]
    rows = []
    for name, path in states:
        model, ckpt = load_model(path)
        unseen = heldout_set(model.preprocess, ckpt["labels"], seed=a.seed, samples_per_class=a.samples_per_class)
        intact = intact_mask(unseen, seed=a.seed, samples_per_class=a.samples_per_class)
        if name in ("qat", "ptq"):
            name, model = f"{name} (int8)", load_int8(a.run / "model_int8.pt2", model.preprocess)
        logits, y = predict_logits(model, unseen)
        r = metrics(logits, y, ckpt["labels"])
        right = logits["fused"].argmax(1) == y
        rows.append({"state": name, "accuracy": r.accuracy, "accuracy_image_only": r.accuracy_image_only,
                     "accuracy_audio_only": r.accuracy_audio_only, "n": r.n,
                     "accuracy_uncorrupted": float(right[intact].mean()), "n_uncorrupted": int(intact.sum()),
                     "correct": correct_string(right)})
    n = rows[0]["n"]
    print(f"\nheld-out set: seed {a.seed}, n = {n} (95 % interval about "
          f"±{196 * (0.93 * 0.07 / n) ** 0.5:.1f} pts near 93 %)\n")
    print(f"| state | fused | fused, both modalities intact (n = {rows[0]['n_uncorrupted']}) | image-only | audio-only |"
          "\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['state']} | {r['accuracy']:.3f} | {r['accuracy_uncorrupted']:.3f} | {r['accuracy_image_only']:.3f} "
              f"| {r['accuracy_audio_only']:.3f} |")
    scratch = next((r for r in rows if r["state"] == "scratch"), None)
    for r in rows:  # paired on the same held-out samples
        if scratch is not None and r["state"] not in ("teacher", "scratch"):
            r["vs_scratch"] = test = mcnemar(r["correct"], scratch["correct"])
            print(f"{r['state']} vs scratch: {test['only_this']} right only by {r['state']}, {test['only_scratch']} "
                  f"only by scratch; McNemar exact p = {test['p_value']:.3f}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [{k: v for k, v in r.items() if k != "correct"} for r in rows]  # n characters per row
        a.json.write_text(json.dumps({"seed": a.seed, "threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
