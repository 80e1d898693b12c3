"""What `--window-mix` costs a temporal model inside clips: test accuracy on a real video folder.

Window mixing (``TrainConfig.window_mix``) teaches a temporal model to let go when an event ends
(benchmarks/temporal_events.py measures that on a stream). On a folder whose clips each hold one class
from start to end (the ``letters`` set of benchmarks/realsets.py: real fonts on photographs, flite's
voices in household sounds) there are no boundaries to learn: this measures what mixing costs there.
Trains ``av_student_temporal`` once per value, same budget and seed, and reports the held-out split's
sample and clip accuracy beside the image-only and audio-only figures.

    python benchmarks/realsets.py --sets letters
    python benchmarks/window_mix.py ~/.cache/edgemm/realsets/letters-v1-40-s0/clips --window-mix 0 0.5 \
        --work runs/window_mix --json benchmarks/results/window_mix_letters_epyc.json

Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks_common import cpu_name, print_table, write_json  # noqa: E402

from edgemm.train import TrainConfig, train  # noqa: E402

MODEL = "av_student_temporal"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="a video folder (root/<label>/*.mp4)")
    p.add_argument("--window-mix", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--min-steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("runs/window_mix"))
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/window_mix.json"))
    a = p.parse_args()
    results = {"meta": {"cpu": cpu_name(), "threads": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                        "data": str(a.data), "model": MODEL, "train_config": {"epochs": a.epochs,
                        "min_steps": a.min_steps, "seed": a.seed}}, "runs": {}}
    for mix in a.window_mix:
        run = a.work / f"mix{mix:g}"
        if not (run / "summary.json").exists():
            config = TrainConfig(epochs=a.epochs, min_steps=a.min_steps, seed=a.seed, window_mix=mix)
            train(MODEL, a.data, out=run, config=config, progress=False)
        summary = json.loads((run / "summary.json").read_text())
        test = summary["test"]
        results["runs"][f"{mix:g}"] = {"steps": summary["steps"], "train_seconds": round(summary["train_seconds"], 1),
                                      "best_val_accuracy": summary["best_val_accuracy"], **{
                                          k: test.get(k) for k in ("accuracy", "accuracy_clip", "n", "n_clips",
                                                                   "accuracy_image_only", "accuracy_audio_only")}}
    write_json(a.json, results)
    cells = ("best_val_accuracy", "accuracy", "accuracy_clip", "accuracy_image_only", "accuracy_audio_only")
    print_table(f"{a.data}: {MODEL}, {a.epochs} epochs / at least {a.min_steps} steps, seed {a.seed}",
                ["window_mix", "steps", "val", "test (samples)", "test (clips)", "image only", "audio only"], "rrrrrrr",
                [[mix, r["steps"], *("—" if r[k] is None else f"{r[k]:.3f}" for k in cells)]
                 for mix, r in results["runs"].items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
