"""The temporal student beside the frame student on the events recording: same clips, same budget.

Both are trained by `edgemm train` on one video folder made from the *train and val* rows of a real
manifest: each clip shows one sample's image for 2-3 s while its utterance plays at the start, then
only a room-noise floor (what `benchmarks/events_real.py` records for each event). Late in a clip the
frame model's 1 s audio window holds noise only; the temporal model (`av_student_temporal`: 4 frames
5 apart) still has the last 2 s of sound. Each is exported to ONNX fp32 and scored by
`edgemm.deploy.evaluate_events` on the events recording built from the *test* rows (on
digits_newvoices, voices never heard in training), with events_real's decoders: naive (the baseline:
top score >= 0.5, nothing else) and `edgemm run --events`' defaults.

    python benchmarks/temporal_events.py ~/.cache/edgemm/realsets/digits_newvoices-v1-150-s0/manifest.csv \
        --work runs/temporal_events --json benchmarks/results/temporal_events_digits_newvoices_epyc.json

``--window-mix 0 0.5`` trains the temporal student once per value of ``TrainConfig.window_mix`` (windows
whose older frames come from another clip, as after an event ends).

Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks_common import cpu_name, print_table, write_json  # noqa: E402
from events_real import DECODERS, FPS, NOISE, build_recording, event_cells, test_rows  # noqa: E402

from edgemm.data.manifest import read_manifest as read_data  # noqa: E402
from edgemm.data.splits import Split  # noqa: E402
from edgemm.data.video import write_clip  # noqa: E402
from edgemm.deploy.events import evaluate_events  # noqa: E402
from edgemm.export import export  # noqa: E402
from edgemm.train import TrainConfig, train  # noqa: E402

SIZE = 96  # clip frames (the models take 64 px; smaller clips keep the decoded folder in memory small)
def variants(window_mix: list[float]) -> list[tuple[str, str, float]]:
    """(run name, model, window_mix): the frame student once, the temporal one per ``window_mix``."""
    out = [("av_student", "av_student", 0.0)]
    for p in window_mix:
        out.append(("av_student_temporal" + (f"-mix{p:g}" if p else ""), "av_student_temporal", p))
    return out


def build_folder(data: Path, out: Path, seed: int) -> int:
    """One clip per train/val row under ``out/<label>/``; returns the clips written (kept if complete)."""
    if (out / ".complete").exists():
        return sum(1 for _ in out.glob("*/*.mp4"))
    rows = [r for s in (Split.TRAIN, Split.VAL) for r in read_data(data, check_media=False).split(s)]
    rng = np.random.default_rng(seed)
    for i, row in enumerate(rows):
        wave, rate = sf.read(row.audio, dtype="float32", always_2d=True)
        length = float(rng.uniform(2.0, 3.0))
        spoken = wave.mean(axis=1)[: int(length * rate)]
        tail = rng.normal(0.0, NOISE, int(round(length * rate)) - len(spoken)).astype(np.float32)
        image = np.asarray(Image.open(row.image).convert("RGB").resize((SIZE, SIZE)))
        (out / row.label).mkdir(parents=True, exist_ok=True)
        write_clip(out / row.label / f"{i:05d}.mp4", [image] * int(round(length * FPS)), FPS,
                   np.concatenate([spoken, tail]), rate)
    (out / ".complete").touch()
    return len(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="a real manifest CSV")
    p.add_argument("--events", type=int, default=60, help="events in the test recording")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--min-steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window-mix", type=float, nargs="+", default=[0.0, 0.5],
                   help="the temporal student's TrainConfig.window_mix, one run per value")
    p.add_argument("--work", type=Path, default=Path("runs/temporal_events"))
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/temporal_events.json"))
    a = p.parse_args()
    clips = build_folder(a.data, a.work / "clips", a.seed)
    results = {"meta": {"cpu": cpu_name(), "threads": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                        "data": str(a.data), "clips": clips, "train_config": {"epochs": a.epochs,
                        "min_steps": a.min_steps, "seed": a.seed}}, "models": {}}
    recording = None
    for name, model, mix in variants(a.window_mix):
        run = a.work / name
        t0 = time.perf_counter()
        if not (run / "best.pt").exists():
            config = TrainConfig(epochs=a.epochs, min_steps=a.min_steps, seed=a.seed, window_mix=mix)
            train(model, a.work / "clips", out=run, config=config, progress=False)
        seconds = time.perf_counter() - t0
        bundle = run / f"{name}-onnx-fp32.edgemm"
        if not bundle.exists():
            export(run, target="onnx", out=bundle, verify_samples=64, log=lambda s: None)
        if recording is None:
            rate = json.loads((bundle / "manifest.json").read_text())["preprocess"]["audio"]["sample_rate"]
            recording = build_recording(test_rows(a.data, a.events, a.seed), a.work / "recording", rate, a.seed)
            results["meta"]["recording"] = recording
        summary = json.loads((run / "summary.json").read_text())
        # the folder's own test split: held-out clips of the manifest's train/val rows (not new voices)
        row = {"model": model, "window_mix": mix, "train_seconds": round(seconds, 1), "steps": summary["steps"],
               "folder_test_accuracy": summary["test"]["accuracy"], "decoders": {}}
        for decoder, (events, smooth) in DECODERS.items():
            r = evaluate_events(bundle, a.work / "recording" / "long.mp4", a.work / "recording" / "long.tsv",
                                events=events, smooth=smooth)
            row["decoders"][decoder] = r.to_dict()
            print(f"[{name} / {decoder}] " + " / ".join(r.lines()[1:]), file=sys.stderr, flush=True)
        results["models"][name] = row
    write_json(a.json, results)
    print_table(f"{a.data}: {clips} training clips; {len(recording['events'])} test events, {recording['seconds']:.0f} s",
                ["model", "steps", "decoder", "event F1 (P / R)", "segment F1 (1 s)", "frame-level accuracy in events"],
                "lrlrrr", [[name, row["steps"], decoder, event_cells(r)] for name, row in results["models"].items()
                           for decoder, r in row["decoders"].items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
