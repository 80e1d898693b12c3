"""Teacher and student trained on the embedded default set: accuracy with both, one modality, and training time.

Usage:
    python benchmarks/train_default.py [--epochs 20] [--out runs/bench-train] [--json benchmarks/results/train_default.json]

Prints a Markdown table and writes the same figures as JSON. Re-running reuses finished runs
(``--resume``); pass a fresh ``--out`` to measure training time again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from benchmarks_common import cpu_name

from edgemm.models import create_model
from edgemm.train import TrainConfig, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="av_teacher,av_student")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", type=Path, default=Path("runs/bench-train"))
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/train_default.json"))
    a = p.parse_args()
    rows = []
    for name in a.models.split(","):
        t0 = time.perf_counter()
        summary = train(name, "default", out=a.out / name, resume=True,
                        config=TrainConfig(epochs=a.epochs, threads=a.threads), progress=False)
        wall = time.perf_counter() - t0
        params = sum(p.numel() for p in create_model(name).parameters())
        t = summary["test"]
        rows.append({"model": name, "params": params, "accuracy": t["accuracy"],
                     "accuracy_image_only": t["accuracy_image_only"], "accuracy_audio_only": t["accuracy_audio_only"],
                     "n": t["n"], "best_val_accuracy": summary["best_val_accuracy"],
                     "train_seconds": summary["train_seconds"], "wall_seconds": wall, "stopped": summary["stopped"]})
    meta = {"cpu": cpu_name(), "threads": a.threads, "torch": torch.__version__, "epochs": a.epochs}
    print(f"\nDefault set, test split; {meta['cpu']}, {a.threads} threads, torch {meta['torch']}\n")
    print("| model | params | fused | image-only | audio-only | n | train time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['accuracy']:.3f} | {r['accuracy_image_only']:.3f} | "
              f"{r['accuracy_audio_only']:.3f} | {r['n']} | {r['train_seconds']:.0f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
