"""Events on a long recording made of real test samples: what `edgemm eval --events` scores for a
bundle, beside the frame-level accuracy and a naive decoder (the baseline).

The recording is built from the *test* split of the bundle's data (real images and voices the model
never trained on; on digits_newvoices the speakers never occur in training): each event shows one
sample's image for 2-3 s while its utterance plays at the event's onset, then a gap of 1-2 s with
nothing held up (a plain grey frame) and only a room-noise floor; both lengths drawn per event.
The annotation file (DCASE TSV: onset, offset, event_label) marks the events. Then
`edgemm.deploy.evaluate_events` runs the bundle over every frame through the runtime `edgemm run
--events` uses, for each decoder:

- **naive** (the baseline): an event wherever the top class's score is at least 0.5, no hysteresis,
  no minimum duration, no merging;
- **default**: `edgemm run --events`'s defaults (on 0.6 / off 0.4, at least 0.3 s, gaps under
  0.3 s merged);
- **default, --smooth 5**: the same over scores averaged across the last 5 results.

    python benchmarks/events_real.py RUN/bundles/av_student-onnx-int8.edgemm --events 40 \
        --json benchmarks/results/events_real_digits_newvoices_epyc.json

Prints one table and writes JSON (with the recording's plan, so it can be rebuilt exactly).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks_common import cpu_name, print_table, write_json  # noqa: E402

from edgemm.data.manifest import Record  # noqa: E402
from edgemm.data.manifest import read_manifest as read_data  # noqa: E402
from edgemm.data.splits import Split  # noqa: E402
from edgemm.data.video import write_clip  # noqa: E402
from edgemm.deploy.events import evaluate_events  # noqa: E402
from edgemm.runtime.events import EventConfig  # noqa: E402
from edgemm.runtime.manifest import read_manifest  # noqa: E402

FPS = 15
GREY = 128
NOISE = 0.003  # room-noise floor (RMS) under gaps and after each utterance
DECODERS = {
    "naive": (EventConfig(on=0.5, off=0.5, min_duration=0.0, merge_gap=0.0), 1),
    "default": (EventConfig(), 1),
    "default, --smooth 5": (EventConfig(), 5),
}


def test_rows(data: Path, n: int, seed: int) -> list[Record]:
    """``n`` test-split rows (the split ``edgemm train`` uses, drawn when the CSV has none), as even
    across classes as ``n`` allows, in a seeded random order."""
    rows = read_data(data, check_media=False).split(Split.TEST)
    if not rows:
        raise SystemExit(f"{data}: no test-split rows")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Record]] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    for group in by_label.values():
        rng.shuffle(group)
    picked, k = [], 0
    while len(picked) < n and any(k < len(g) for g in by_label.values()):
        picked += [g[k] for g in by_label.values() if k < len(g)][: n - len(picked)]
        k += 1
    order = rng.permutation(len(picked))
    return [picked[i] for i in order]


def build_recording(rows: list[Record], out: Path, sample_rate: int, seed: int) -> dict:
    """Writes ``out/long.mp4`` and ``out/long.tsv``; returns the plan (what was placed where)."""
    rng = np.random.default_rng(seed + 1)
    first = np.asarray(Image.open(rows[0].image).convert("RGB"))
    h, w = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2  # H.264 needs even sides
    blank = np.full((h, w, 3), GREY, np.uint8)
    frames, waves, plan, t = [], [], [], 0.0
    annotations = ["onset\toffset\tevent_label"]

    def noise(seconds: float) -> np.ndarray:
        return rng.normal(0.0, NOISE, int(round(seconds * sample_rate))).astype(np.float32)

    def hold(frame: np.ndarray, seconds: float) -> None:
        frames.extend([frame] * int(round(seconds * FPS)))

    for row in rows:
        gap = float(rng.uniform(1.0, 2.0))
        hold(blank, gap)
        waves.append(noise(gap))
        t += gap
        length = float(rng.uniform(2.0, 3.0))
        image = np.asarray(Image.open(row.image).convert("RGB").resize((w, h)))
        hold(image, length)
        wave, rate = sf.read(row.audio, dtype="float32", always_2d=True)
        if rate != sample_rate:
            raise SystemExit(f"{row.audio}: {rate} Hz, the bundle expects {sample_rate} Hz")
        spoken = wave.mean(axis=1)[: int(length * sample_rate)]
        waves.append(np.concatenate([spoken, noise(length - len(spoken) / sample_rate)]))
        annotations.append(f"{t:.3f}\t{t + length:.3f}\t{row.label}")
        plan.append({"image": str(row.image), "audio": str(row.audio), "label": row.label, "onset": round(t, 3),
                     "offset": round(t + length, 3), "gap_before": round(gap, 3)})
        t += length
    hold(blank, 1.5)
    waves.append(noise(1.5))
    out.mkdir(parents=True, exist_ok=True)
    write_clip(out / "long.mp4", frames, FPS, np.concatenate(waves), sample_rate)
    (out / "long.tsv").write_text("\n".join(annotations) + "\n")
    return {"seconds": round(t + 1.5, 3), "fps": FPS, "events": plan}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--data", type=Path, default=None, help="manifest CSV (default: the one the bundle names)")
    p.add_argument("--events", type=int, default=40, help="events in the recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("runs/events_real"))
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/events_real.json"))
    a = p.parse_args()
    manifest = read_manifest(a.bundle)
    data = a.data or Path(manifest.source["data"])
    rate = manifest.preprocess["audio"]["sample_rate"]
    plan = build_recording(test_rows(data, a.events, a.seed), a.work, rate, a.seed)
    video, annotations = a.work / "long.mp4", a.work / "long.tsv"
    results = {"meta": {"cpu": cpu_name(), "threads": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                        "bundle": str(a.bundle), "data": str(data), "seed": a.seed, "recording": plan},
               "decoders": {}}
    for name, (config, smooth) in DECODERS.items():
        t0 = time.perf_counter()
        r = evaluate_events(a.bundle, video, annotations, events=config, smooth=smooth)
        results["decoders"][name] = {**r.to_dict(), "seconds": time.perf_counter() - t0}
        print(f"[{name}] " + " / ".join(r.lines()[1:]), file=sys.stderr, flush=True)
    write_json(a.json, results)
    print_table(f"{a.bundle} on {len(plan['events'])} events, {plan['seconds']:.0f} s ({data})",
                ["decoder", "events found", "event F1 (P / R)", "segment F1 (1 s)", "frame-level accuracy in events"],
                "lrrrr", [[name, len(r["found"]), event_cells(r)] for name, r in results["decoders"].items()])
    return 0


def event_cells(r: dict) -> str:
    """One evaluation's table cells: event F1 (P / R) | segment F1 | frame-level accuracy in events."""
    e, s = r["event_based"], r["segment_based"]
    return (f"{e['f1']:.3f} ({e['precision']:.3f} / {e['recall']:.3f}) | {s['f1']:.3f} | "
            f"{r['frame_level']['accuracy']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
