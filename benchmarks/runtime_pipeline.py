"""Throughput of the live pipeline on video files against a bare loop over the same backend.

Usage:
    python benchmarks/runtime_pipeline.py [--bundle B.edgemm] [--clips-per-class 2] [--repeats 3]
        [--json benchmarks/results/runtime_pipeline.json]

Without ``--bundle`` the compressed default student (``runs/compress``, from ``edgemm compress``) is
exported to an fp32 ONNX bundle first. Clips are the embedded default classes as H.264 + AAC video
(``edgemm data make --video``). Three ways to get a result per frame, each timed over all clips:

- **pipeline**: ``edgemm run --video CLIP`` as fast as possible (PyAV decoding on the source thread,
  ``Sync`` pairing each frame with its audio window, session, smoothing, a sink), no display;
- **bare loop**: ``session.predict(frame, window)`` over frames and windows decoded beforehand —
  the backend and preprocessing alone, the ceiling;
- **decode + loop**: decoding each clip and then the bare loop, one thread.

The goal is pipeline ≥ 95 % of the bare loop. Medians of ``--repeats`` runs; one process, one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

from edgemm.data.preprocess import window_at  # noqa: E402
from edgemm.data.synthetic import make_video_folder  # noqa: E402
from edgemm.data.video import decode_clip  # noqa: E402
from edgemm.runtime import load  # noqa: E402
from edgemm.runtime.pipeline import RunConfig  # noqa: E402
from edgemm.runtime.run import Inputs, run  # noqa: E402


def bare(session, decoded) -> int:
    a = session.preprocess.audio
    n = 0
    for clip in decoded:
        for frame, t in zip(clip.frames, clip.times):
            session.predict(image=frame, audio=window_at(clip.audio, t - clip.audio_start, a))
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--run", type=Path, default=Path("runs/compress"))
    p.add_argument("--clips-per-class", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/runtime_pipeline.json"))
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgemm-bench-"))
    bundle = a.bundle
    if bundle is None:
        from edgemm.export import export

        bundle = work / "student-onnx-fp32.edgemm"
        export(a.run / "model.pt", target="onnx", out=bundle, log=lambda s: None)
    session = load(bundle, threads=a.threads)
    clips = sorted(make_video_folder(work / "clips", clips_per_class=a.clips_per_class).glob("*/*.mp4"))
    sr = session.preprocess.audio.sample_rate

    times = {"pipeline": [], "bare loop": [], "decode + loop": []}
    frames = 0
    for _ in range(a.repeats):
        t = time.perf_counter()
        results = sum(run(session, Inputs(video=c), RunConfig(), quiet=True, log=lambda s: None).results
                      for c in clips)
        times["pipeline"].append(time.perf_counter() - t)
        t = time.perf_counter()
        decoded = [decode_clip(c, sr) for c in clips]
        t_decoded = time.perf_counter()
        frames = bare(session, decoded)
        t_end = time.perf_counter()
        times["bare loop"].append(t_end - t_decoded)
        times["decode + loop"].append(t_end - t)
        assert results == frames, (results, frames)

    rows = []
    base = frames / statistics.median(times["bare loop"])
    for name, ts in times.items():
        fps = frames / statistics.median(ts)
        rows.append({"mode": name, "frames": frames, "seconds_median": statistics.median(ts), "results_per_s": fps,
                     "vs_bare_loop": fps / base})
    print(f"\n{bundle.name}, {len(clips)} clips, {frames} frames, median of {a.repeats}, {cpu_name()}, "
          f"{os.cpu_count()} cores, threads={a.threads or 'backend default'}\n")
    print("| mode | results/s | vs bare loop |")
    print("|---|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['results_per_s']:.0f} | {r['vs_bare_loop']:.1%} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "cores": os.cpu_count(), "bundle": str(bundle),
                                           "clips": len(clips), "repeats": a.repeats, "threads": a.threads},
                                  "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
