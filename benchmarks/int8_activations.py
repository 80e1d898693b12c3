"""int8 or uint8 activations for onnxruntime's QDQ int8: paired timing and where the time goes.

For each checkpoint (``LABEL=PATH``): exports the float model to ONNX with the log-mel computed by
the runtime (``--frontend runtime``, so the graph is the part int8 can speed up), calibrates it with
onnxruntime's ``quantize_static`` as ``edgemm export`` does (QDQ, per-channel int8 weights) once
with int8 and once with uint8 activations, and times fp32 / int8-activations / uint8-activations at
batch 1 in ``--rounds`` interleaved rounds (ratios paired within a round). Then one profiled run
per model (``SessionOptions.enable_profiling``) gives the time per operator type and the number
of nodes (``OrtBackend.layer_times``): where the Quantize/Dequantize pairs onnxruntime could not
fuse away end up.

    python benchmarks/int8_activations.py teacher=~/.cache/edgemm/teachers/av_teacher-302016402785/best.pt \\
        student=runs/bench-compress/model.pt --json benchmarks/results/int8_activations_xeon.json

Prints one table per section and writes JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # edgemm from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

ACTIVATIONS = ("int8", "uint8")


def quantized_variants(checkpoint: Path, work: Path, calib_samples: int) -> dict[str, Path]:
    """fp32 ONNX of the frontend-less model, and its int8 QDQ calibration per activation type."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edgemm.export.onnx import prepare_for_quantization, reader, scope_nodes, to_onnx
    from edgemm.export.source import load_samples, load_source

    src = load_source(checkpoint).frontend_at_runtime()
    fp32 = to_onnx(src.model, work / "fp32.onnx", src.model.example_inputs(2))
    samples = load_samples(src.ckpt.get("data") or "default", src.preprocess, src.labels, ("train",), calib_samples)
    feeds = samples.as_logmel(src.preprocess.audio).feeds(1)
    pre = prepare_for_quantization(fp32, work / "pre.onnx")
    paths = {"fp32": fp32}
    for name, act in zip(ACTIVATIONS, (QuantType.QInt8, QuantType.QUInt8)):
        paths[name] = work / f"{name}.onnx"
        quantize_static(str(pre), str(paths[name]), reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=act, weight_type=QuantType.QInt8,
                        nodes_to_exclude=scope_nodes(onnx.load(str(fp32))))
    return paths


def backend(path: Path, threads: int, profile: bool = False):
    """edgemm's onnxruntime backend on the CPU (what a bundle runs on)."""
    from edgemm.runtime.backends.onnxruntime import OrtBackend

    return OrtBackend(path, threads=threads, profile=profile)


def random_feeds(b) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in b.session.get_inputs()}


def per_op(path: Path, threads: int, calls: int = 100) -> dict[str, dict]:
    """Operator type -> summed mean kernel µs and node count (``OrtBackend.layer_times``)."""
    b = backend(path, threads, profile=True)
    feeds = random_feeds(b)
    for _ in range(calls):
        b.run(feeds)
    ops: dict[str, dict] = collections.defaultdict(lambda: {"us": 0.0, "nodes": 0})
    for t in b.layer_times():
        ops[t.op]["us"] += t.mean_ms * 1e3
        ops[t.op]["nodes"] += 1
    return dict(ops)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="LABEL=CHECKPOINT")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calib-samples", type=int, default=256)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    results = {"cpu": cpu_name(), "threads": args.threads, "runs": args.runs, "rounds": args.rounds, "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgemm-int8-act-") as tmp:
        variants = {}
        for spec in args.models:
            label, _, path = spec.partition("=")
            work = Path(tmp) / label
            work.mkdir()
            variants[label] = quantized_variants(Path(path).expanduser(), work, args.calib_samples)
        sessions = {(m, v): backend(path, args.threads) for m, paths in variants.items() for v, path in paths.items()}
        feeds = {key: random_feeds(s) for key, s in sessions.items()}
        medians = collections.defaultdict(list)
        for r in range(args.rounds):
            for key, s in sessions.items():
                for _ in range(20):
                    s.run(feeds[key])
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    s.run(feeds[key])
                    times.append(time.perf_counter() - t0)
                medians[key].append(statistics.median(times) * 1e3)
            print(f"int8_activations: round {r + 1}/{args.rounds} done", file=sys.stderr)
        for m, paths in variants.items():
            rows = results["models"][m] = {}
            for v, path in paths.items():
                ratios = [f / x for f, x in zip(medians[(m, "fp32")], medians[(m, v)])]
                rows[v] = {"p50_ms": statistics.median(medians[(m, v)]), "x_vs_fp32": statistics.median(ratios),
                           "rounds": [round(x, 3) for x in ratios], "ops": per_op(path, args.threads)}

    print(f"\n{results['cpu']}, batch 1, {args.threads} threads, median of {args.rounds} interleaved rounds of "
          f"{args.runs} calls; graph without the frontend (--frontend runtime)\n")
    print("| model | activations | p50 ms | × vs fp32 (rounds) | Q/DQ nodes | Q/DQ µs | int8 kernels µs |")
    print("|---|---|---:|---|---:|---:|---:|")
    for m, rows in results["models"].items():
        for v, row in rows.items():
            ops = row["ops"]
            qdq = [ops.get(o, {"us": 0, "nodes": 0}) for o in ("QuantizeLinear", "DequantizeLinear")]
            qlinear = sum(o["us"] for name, o in ops.items() if name.startswith(("QLinear", "QGemm")))
            print(f"| {m} | {v} | {row['p50_ms']:.3f} | {row['x_vs_fp32']:.2f} ({', '.join(map(str, row['rounds']))}) "
                  f"| {sum(o['nodes'] for o in qdq)} | {sum(o['us'] for o in qdq):.0f} | {qlinear:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
