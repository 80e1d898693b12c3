"""The whole chain on the embedded default set: compress (or reuse), then bench every format.

Usage:
    python benchmarks/chain_default.py [--run runs/compress] [--targets onnx,openvino,tflite]
        [--precisions fp32,fp16,int8] [--threads N] [--runs 200] [--json benchmarks/results/bench_default.json]

If ``RUN/model.pt`` is missing, ``edgemm compress --out RUN`` builds it first (teacher, student,
distil, prune, QAT; the teacher is cached for later runs). Then ``edgemm bench`` exports each
target × precision (reusing bundles of the same checkpoint), evaluates each on the whole test
split, profiles it, and this script prints the table with the teacher and the compressed student's
PyTorch rows for scale (size, MACs, latency, accuracy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

from edgemm.deploy.bench import BenchConfig, bench, plot, to_markdown  # noqa: E402
from edgemm.profile.stats import LatencyStats  # noqa: E402


def _torch_p50(model, preprocess, runs: int) -> LatencyStats:
    rng = np.random.default_rng(0)
    x = (torch.from_numpy(rng.standard_normal((1, 3, preprocess.image.size, preprocess.image.size)).astype(np.float32)),
         torch.from_numpy((0.1 * rng.standard_normal((1, preprocess.audio.clip_samples))).astype(np.float32)),
         torch.ones(1), torch.ones(1))
    times = []
    with torch.inference_mode():
        for i in range(runs + 10):
            t = time.perf_counter_ns()
            model(*x)
            if i >= 10:
                times.append(time.perf_counter_ns() - t)
    return LatencyStats.from_ns(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("runs/compress"))
    p.add_argument("--targets", default="onnx,openvino,tflite")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_default.json"))
    a = p.parse_args()

    t0 = time.perf_counter()
    if not (a.run / "model.pt").is_file():
        subprocess.run([sys.executable, "-m", "edgemm.cli", "compress", "--out", str(a.run)], check=True)
    compress_s = time.perf_counter() - t0
    if a.threads:
        torch.set_num_threads(a.threads)
    config = BenchConfig(targets=tuple(a.targets.split(",")), precisions=tuple(a.precisions.split(",")),
                         runs=a.runs, threads=a.threads, out=a.run / "bench")
    report = bench(a.run / "model.pt", config, log=lambda s: print(s, file=sys.stderr, flush=True))
    plot(report, a.run / "bench" / "bench.png")

    # The teacher for scale: what compression bought.
    rep = json.loads((a.run / "report.json").read_text())
    extra = {"teacher": rep["teacher"], "student": rep["stages"][-1]}
    tpath = Path(rep["teacher"].get("path", ""))
    if tpath.is_file():
        from edgemm.train import load_model

        tmodel = load_model(tpath)[0].eval()
        extra["teacher_inference"] = _torch_p50(tmodel, tmodel.preprocess, a.runs).to_dict()
    print(f"\n{cpu_name()}, threads {a.threads or 'default'}; compress {'reused' if compress_s < 5 else f'{compress_s:.0f} s'}\n")
    print(to_markdown(report))
    if "teacher_inference" in extra:
        print(f"\nteacher (PyTorch fp32 eager): p50 {extra['teacher_inference']['p50_ms']:.3f} ms")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({**report.to_dict(), **extra, "threads": a.threads}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
