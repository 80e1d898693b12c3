"""Throughput of the live pipeline on video files against loops over the same backend.

Usage:
    python benchmarks/runtime_pipeline.py [--bundles B1.edgemm,B2.edgemm] [--clips-per-class 2] [--repeats 3]
        [--threads N] [--json benchmarks/results/runtime_pipeline.json]

Without ``--bundles`` the compressed default student (``runs/compress``) is exported to fp32 ONNX,
OpenVINO and TFLite bundles first (or the ones ``edgemm bench`` left in ``runs/compress/bench`` are
used). Clips are the embedded default classes as H.264 + AAC video (``edgemm data make --video``),
also concatenated (stream copy) into one long file. Per bundle, each way to get one result per
frame is timed (median of ``--repeats``):

- **pipeline**: ``edgemm run --video LONG`` as fast as possible (PyAV decoding on the source thread,
  ``Sync`` pairing each frame with its audio window, session, smoothing), no display, up to
  ``RunConfig.batch`` (8) waiting frames per model call;
- **pipeline, batch 1**: the same, one frame per model call (what ``edgemm run`` did before batching);
- **decode + loop**: decoding the same file, then ``session.predict(frame, window)`` per frame, one
  thread: the same work without the pipeline (the goal: pipeline >= 95 % of this);
- **bare loop**: the loop alone over frames decoded beforehand: the backend and preprocessing, the
  ceiling when decoding is free;
- **decode only**: decoding video and audio (resampled) without inference: if this is faster than
  the bare loop, decoding alone does not limit the pipeline;
- **pipeline, separate clips**: one ``edgemm run`` per short clip (start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
from edgemm.runtime.run import Inputs, live_threads, run  # noqa: E402


def bare(session, decoded) -> int:
    a = session.preprocess.audio
    n = 0
    for clip in decoded:
        for frame, t in zip(clip.frames, clip.times):
            session.predict(image=frame, audio=window_at(clip.audio, t - clip.audio_start, a))
            n += 1
    return n


def _bundles(run: Path, work: Path) -> list[Path]:
    from edgemm.export import export

    out = []
    for target in ("onnx", "openvino", "tflite"):
        reuse = run / "bench" / f"av_student-{target}-fp32.edgemm"
        if reuse.is_dir():
            out.append(reuse)
            continue
        bundle = work / f"student-{target}-fp32.edgemm"
        export(run / "model.pt", target=target, out=bundle, log=lambda s: None)
        out.append(bundle)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundles", default=None, help="comma-separated bundles (default: the default student, 3 targets)")
    p.add_argument("--run", type=Path, default=Path("runs/compress"))
    p.add_argument("--clips-per-class", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="(default: what `edgemm run` uses)")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/runtime_pipeline.json"))
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgemm-bench-"))
    bundles = [Path(b) for b in a.bundles.split(",")] if a.bundles else _bundles(a.run, work)
    clips = sorted(make_video_folder(work / "clips", clips_per_class=a.clips_per_class).glob("*/*.mp4"))
    (work / "list.txt").write_text("".join(f"file '{c}'\n" for c in clips))
    long = work / "all-clips.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(work / "list.txt"),
                    "-c", "copy", str(long)], check=True)

    rows = []
    for bundle in bundles:
        session = load(bundle, threads=a.threads or live_threads())  # what `edgemm run` uses
        sr = session.preprocess.audio.sample_rate
        times = {"pipeline": [], "pipeline, batch 1": [], "decode + loop": [], "bare loop": [], "decode only": [],
                 "pipeline, separate clips": []}
        frames = 0
        for _ in range(a.repeats):
            t = time.perf_counter()
            results = run(session, Inputs(video=long), RunConfig(), quiet=True, log=lambda s: None).results
            times["pipeline"].append(time.perf_counter() - t)
            t = time.perf_counter()
            one = run(session, Inputs(video=long), RunConfig(batch=1), quiet=True, log=lambda s: None).results
            times["pipeline, batch 1"].append(time.perf_counter() - t)
            assert one == results, (one, results)
            t = time.perf_counter()
            decoded = [decode_clip(long, sr)]
            t_decoded = time.perf_counter()
            frames = bare(session, decoded)
            t_end = time.perf_counter()
            times["bare loop"].append(t_end - t_decoded)
            times["decode only"].append(t_decoded - t)
            times["decode + loop"].append(t_end - t)
            assert results == frames, (results, frames)
            t = time.perf_counter()
            per_clip = sum(run(session, Inputs(video=c), RunConfig(), quiet=True, log=lambda s: None).results
                           for c in clips)
            times["pipeline, separate clips"].append(time.perf_counter() - t)
            assert per_clip == frames, (per_clip, frames)
        rate = {name: frames / statistics.median(ts) for name, ts in times.items()}
        for name, r in rate.items():
            rows.append({"bundle": bundle.name, "backend": session.backend.name, "mode": name, "frames": frames,
                         "results_per_s": r, "vs_decode_loop": r / rate["decode + loop"],
                         "vs_bare_loop": r / rate["bare loop"]})

    print(f"\n{len(clips)} clips ({frames} frames; also as one file), median of {a.repeats}, {cpu_name()}, "
          f"{os.cpu_count()} cores, inference threads {a.threads or live_threads()}\n")
    print("| backend | mode | results/s | vs decode + loop | vs bare loop |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['mode']} | {r['results_per_s']:.0f} | {r['vs_decode_loop']:.1%} | "
              f"{r['vs_bare_loop']:.1%} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "cores": os.cpu_count(), "clips": len(clips),
                                           "repeats": a.repeats, "threads": a.threads}, "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
