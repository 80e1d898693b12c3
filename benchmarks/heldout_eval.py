"""Every model state of an `edgemm compress` run, evaluated on a fresh generated set (another seed).

The default set's test split has 300 samples (95 % interval about ±3 pts); the generator can draw
any number of unseen samples, so this gives comparisons between stages that are not lost in noise.

Usage:
    python benchmarks/heldout_eval.py RUN_DIR [--seed 2] [--samples-per-class 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset

from edgemm.compress.quantize import load_int8
from edgemm.data import open_dataset
from edgemm.data.synthetic import SyntheticConfig, make_default
from edgemm.train import evaluate, load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an `edgemm compress --out` directory")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--samples-per-class", type=int, default=300)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    report = json.loads((a.run / "report.json").read_text())
    csv_path = make_default(SyntheticConfig(samples_per_class=a.samples_per_class, seed=a.seed),
                            root=Path(tempfile.gettempdir()) / "edgemm-heldout")
    states = [("teacher", Path(report["teacher"]["path"]))]
    states += [(p.stem.split("_", 1)[1], p) for p in sorted((a.run / "stages").glob("*.pt"))]
    rows = []
    for name, path in states:
        model, ckpt = load_model(path)
        splits = open_dataset(csv_path, model.preprocess, labels=ckpt["labels"])
        unseen = ConcatDataset([splits.train, splits.val, splits.test])  # all of it: another seed
        if name in ("qat", "ptq"):
            name, model = f"{name} (int8)", load_int8(a.run / "model_int8.pt2", model.preprocess)
        r = evaluate(model, unseen, ckpt["labels"])
        rows.append({"state": name, "accuracy": r.accuracy, "accuracy_image_only": r.accuracy_image_only,
                     "accuracy_audio_only": r.accuracy_audio_only, "n": r.n})
    n = rows[0]["n"]
    print(f"\nheld-out set: seed {a.seed}, n = {n} (95 % interval about "
          f"±{196 * (0.93 * 0.07 / n) ** 0.5:.1f} pts near 93 %)\n")
    print("| state | fused | image-only | audio-only |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['state']} | {r['accuracy']:.3f} | {r['accuracy_image_only']:.3f} | {r['accuracy_audio_only']:.3f} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"seed": a.seed, "threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
