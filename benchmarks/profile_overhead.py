"""What profiling costs: edgemm profile's timing against an untimed loop, and the per-layer
profilers' slow-down.

Usage:
    python benchmarks/profile_overhead.py [--bundles B1,B2] [--runs 1000] [--threads N]
        [--json benchmarks/results/profile_overhead.json]

Per bundle (default: the fp32 bundles ``edgemm bench`` left in ``runs/compress/bench``), on the
same synthetic camera frame and audio window:

- **untimed**: ``session.predict`` ``--runs`` times, wall time / runs (the reference);
- **edgemm profile**: the mean end-to-end time ``edgemm profile`` reports for the same calls (its
  ``perf_counter_ns`` stamps and bookkeeping included);
- **layer profiler on**: the untimed loop on a session opened with the backend's per-op profiler
  (onnxruntime ``enable_profiling``, OpenVINO ``PERF_COUNT``); TFLite has none.

Ratios to the untimed loop, medians of ``--repeats`` alternating rounds, one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

from edgemm.profile import ProfileConfig, profile  # noqa: E402
from edgemm.profile.latency import synthetic_inputs  # noqa: E402
from edgemm.runtime.session import Session  # noqa: E402


def untimed(session: Session, frame, audio, runs: int) -> float:
    for _ in range(20):
        session.predict(frame, audio)
    t = time.perf_counter()
    for _ in range(runs):
        session.predict(frame, audio)
    return (time.perf_counter() - t) / runs * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundles", default=None)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/profile_overhead.json"))
    a = p.parse_args()
    bundles = ([Path(b) for b in a.bundles.split(",")] if a.bundles else
               sorted(Path("runs/compress/bench").glob("*-fp32.edgemm")))
    rows = []
    for bundle in bundles:
        plain = Session(bundle, threads=a.threads)
        frame, audio = synthetic_inputs(plain, (640, 480))
        layered = None if plain.backend.name == "tflite" else Session(bundle, threads=a.threads, profile=True)
        base, prof, lay = [], [], []
        for _ in range(a.repeats):
            base.append(untimed(plain, frame, audio, a.runs))
            r = profile(bundle, ProfileConfig(runs=a.runs, warmup=20, layers=0, threads=a.threads))
            prof.append(r.stages["end_to_end"].mean_ms)
            if layered is not None:
                lay.append(untimed(layered, frame, audio, a.runs))
        row = {"bundle": bundle.name, "backend": plain.backend.name, "untimed_ms": statistics.median(base),
               "profile_ms": statistics.median(prof), "layer_profiler_ms": statistics.median(lay) if lay else None}
        row["profile_overhead"] = row["profile_ms"] / row["untimed_ms"] - 1
        row["layer_profiler_overhead"] = row["layer_profiler_ms"] / row["untimed_ms"] - 1 if lay else None
        rows.append(row)
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, threads={a.threads or 'backend default'}, "
          f"{a.runs} predictions × {a.repeats} rounds\n")
    print("| backend | untimed ms/prediction | edgemm profile (mean e2e) | overhead | layer profiler on | overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        lay = f"{r['layer_profiler_ms']:.3f} | {r['layer_profiler_overhead']:+.1%}" if r["layer_profiler_ms"] else "— | —"
        print(f"| {r['backend']} | {r['untimed_ms']:.3f} | {r['profile_ms']:.3f} | {r['profile_overhead']:+.1%} | {lay} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "cores": os.cpu_count(), "runs": a.runs,
                                           "threads": a.threads}, "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
