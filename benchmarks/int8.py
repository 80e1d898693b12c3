"""Is int8 faster, and what does the audio frontend cost? Every target x precision, paired and interleaved.

For each checkpoint given (``LABEL=PATH``: the compressed default student, a larger student, the
teacher), exports every target x precision the target supports (``edgemm export``, verified; an int8
bundle that fails verification gets an ``int8-fallback`` row: ``--max-drop 1``; bundles
are reused across runs when the checkpoint is unchanged, as ``edgemm bench`` does), evaluates each bundle on the checkpoint's
test split through the runtime, and times single-sample inference (batch 1, ``--threads``) in
``--rounds`` interleaved rounds: in each round every bundle runs ``--runs`` calls in turn, so all
formats see the same machine load. Per row: the median of the round medians, and the ratio to the
same target's fp32 in each round (paired; > 1 means faster than fp32).

The frontend share is measured the same way: the log-mel frontend alone (waveform in, log-mel out)
is exported to each target in float, both as the staged DFT the models now use and as the dense
DFT-as-convolution it replaced, and timed in the same rounds; its share is its time over the
model's fp32 time on that backend.

    python benchmarks/int8.py student=runs/bench-compress/model.pt \\
        teacher=~/.cache/edgemm/teachers/av_teacher-302016402785/best.pt --threads 2 --runs 300 --rounds 3 \\
        --json benchmarks/results/int8_xeon.json

Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # edgemm from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402


def _quiet(_msg: str) -> None:
    pass


def bundles_for(label: str, src, targets, precisions, out: Path, frontend: str = "graph") -> list[dict]:
    """One bundle per supported target x precision (``edgemm bench``'s export-or-reuse); failures are rows."""
    from edgemm.deploy.attempt import Attempt
    from edgemm.deploy.bench import export_or_reuse
    from edgemm.export.formats import offers
    from edgemm.runtime import read_manifest

    rows = []
    for target in targets:
        for precision in precisions:
            if not offers(target, precision):
                continue
            row = {"model": label, "target": target, "precision": precision}
            try:
                tried = export_or_reuse(src, target, precision, out, frontend=frontend, log=_quiet)
            except Exception as e:  # noqa: BLE001 - an export failure is a row
                tried = Attempt(None, error=f"{type(e).__name__}: {e}")
            if tried.bundle is None:
                row.update(status="export-failed", reason=tried.error[:200])
            else:
                bundle, v = tried.bundle, tried.verification
                files = read_manifest(bundle).files
                row.update(bundle=str(bundle), status=v.get("status"), top1_agreement=v.get("top1_agreement"),
                           size_mb=sum((bundle / f).stat().st_size for f in files.values()) / 1e6)
            rows.append(row)
            print(f"int8: {label} {target} {precision}: {row['status']}", file=sys.stderr)
            if precision == "int8" and row.get("status") == "failed":
                rows.append(with_fallback(label, src, target, out, frontend=frontend))
    return rows


def with_fallback(label: str, src, target: str, out: Path, max_drop: float = 1.0, frontend: str = "graph") -> dict:
    """The int8 bundle ``edgemm export --max-drop`` makes after a failed int8 verification: the
    layers the int8 debugger ranks worst kept float until it verifies."""
    from edgemm.export import VerificationFailed, export
    from edgemm.runtime import read_manifest

    bundle = out / f"{src.name}-{target}-int8-fallback{'' if frontend == 'graph' else '-' + frontend + '-frontend'}.edgemm"
    row = {"model": label, "target": target, "precision": "int8-fallback", "bundle": str(bundle)}
    try:
        m = export(src.checkpoint, target=target, precision="int8", out=bundle, max_drop=max_drop, frontend=frontend,
                   log=_quiet)
    except VerificationFailed:
        m = read_manifest(bundle)
    kept = (m.quantization or {}).get("kept_float", [])
    row.update(status=m.verification.get("status"), top1_agreement=m.verification.get("top1_agreement"),
               kept_float=[k["module"] for k in kept],
               size_mb=sum((bundle / f).stat().st_size for f in m.files.values()) / 1e6)
    print(f"int8: {label} {target} int8-fallback: {row['status']} ({len(kept)} layers float)", file=sys.stderr)
    return row


def frontend_models(preprocess, targets, out: Path) -> list[dict]:
    """The frontend alone, staged and dense, exported to each target in float."""
    import torch
    from torch import nn

    from edgemm.models.frontend import LogMelFrontend

    class Alone(nn.Module):
        def __init__(self, staged: bool) -> None:
            super().__init__()
            self.frontend = LogMelFrontend(preprocess.audio, staged=staged)

        def forward(self, audio):
            return self.frontend(audio)

    wave = torch.zeros(1, preprocess.audio.clip_samples)
    rows = []
    for staged in (True, False):
        module = Alone(staged).eval()
        kind = "staged" if staged else "dense"
        onnx_path = out / f"frontend-{kind}.onnx"
        torch.onnx.export(module, (wave,), str(onnx_path), dynamo=True, opset_version=18, input_names=["audio"],
                          output_names=["logmel"])
        for target in targets:
            path, backend, name = {"onnx": (onnx_path, "onnxruntime", "audio")}.get(target, (None, None, None))
            if target == "openvino":
                import openvino as ov

                path, backend, name = out / f"frontend-{kind}.xml", "openvino", "audio"
                ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
            elif target == "tflite":
                import litert_torch

                path, backend, name = out / f"frontend-{kind}.tflite", "tflite", "args_0"
                litert_torch.convert(module, (wave,)).export(str(path))
            elif target == "executorch":
                from edgemm.export.executorch import lower

                path, backend, name = out / f"frontend-{kind}.pte", "executorch", "input_0"
                path.write_bytes(lower(module, (wave,)))
            rows.append({"target": target, "kind": kind, "path": str(path), "backend": backend, "input": name,
                         "macs": module.frontend.macs()})
    return rows


def time_calls(fn, runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1e6)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="LABEL=CHECKPOINT")
    p.add_argument("--targets", default="onnx,openvino,tflite,executorch")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("runs/int8-bench"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--frontend-only", action="store_true", help="time only the frontends (staged and dense)")
    p.add_argument("--frontend", default="graph", choices=["graph", "runtime"],
                   help="export with the log-mel in the graph or computed by the runtime; with runtime, the "
                        "timed call is the graph alone on a log-mel (the frontend costs the same at every precision)")
    args = p.parse_args()
    targets, precisions = args.targets.split(","), args.precisions.split(",")
    args.out.mkdir(parents=True, exist_ok=True)

    from edgemm.compress.prune import count_macs_params, frontend_macs
    from edgemm.data import open_dataset
    from edgemm.export.onnx import F32_HINT
    from edgemm.export.source import load_source
    from edgemm.runtime import evaluate_session, load
    from edgemm.runtime.backends import open_backend

    rows, models = [], {}
    for spec in [] if args.frontend_only else args.models:
        label, _, path = spec.partition("=")
        src = load_source(Path(path).expanduser())
        macs, params = count_macs_params(src.model)
        models[label] = {"checkpoint": str(src.checkpoint), "name": src.name, "macs": macs, "params": params,
                         "frontend_macs": frontend_macs(src.model)}
        data = src.ckpt.get("data") or "default"
        test = open_dataset(data, src.preprocess, splits=("test",), labels=src.labels).get("test")
        models[label]["data"] = f"{data} [test, n={len(test)}]"
        # one directory per label: two checkpoints of the same model (e.g. x86 and xnnpack QAT) would
        # otherwise share bundle names and the second export would replace the first
        for row in bundles_for(label, src, targets, precisions, args.out / label, args.frontend):
            if row["status"] in ("passed", "failed"):
                r = evaluate_session(load(row["bundle"], threads=args.threads), test, src.labels)
                row["accuracy"] = r.accuracy
            rows.append(row)
    preprocess = load_source(Path(args.models[0].partition("=")[2]).expanduser()).preprocess
    fronts = frontend_models(preprocess, targets, args.out)

    # Interleaved timing: every bundle and frontend once per round, same inputs, same threads.
    rng = np.random.default_rng(0)
    sessions, calls = {}, {}
    for i, row in enumerate(rows):
        if "accuracy" in row:
            s = load(row["bundle"], threads=args.threads)
            pre = s.preprocess
            img = rng.standard_normal((1, 3, pre.image.size, pre.image.size)).astype(np.float32)
            wav = (0.1 * rng.standard_normal((1, pre.audio.clip_samples))).astype(np.float32)
            if s.logmel is not None:  # --frontend runtime: time the graph alone
                wav = s.logmel(wav)
            ones = np.ones(1, np.float32)
            sessions[i] = s
            calls[("model", i)] = lambda s=s, a=(img, wav, ones, ones): s.run(*a)
    for j, f in enumerate(fronts):
        # f32 on OpenVINO, as every bundle asks (its CPU plugin otherwise runs bf16 where the CPU can)
        b = open_backend(f["backend"], Path(f["path"]), threads=args.threads, runtime_hints={"openvino": F32_HINT})
        wav = (0.1 * rng.standard_normal((1, preprocess.audio.clip_samples))).astype(np.float32)
        calls[("frontend", j)] = lambda b=b, feed={f["input"]: wav}: b.run(feed)
    medians: dict = {k: [] for k in calls}
    for r in range(args.rounds):
        for key, fn in calls.items():
            medians[key].append(time_calls(fn, args.runs))
        print(f"int8: round {r + 1}/{args.rounds} done", file=sys.stderr)

    for j, f in enumerate(fronts):
        f["p50_ms_rounds"] = medians[("frontend", j)]
        f["p50_ms"] = statistics.median(f["p50_ms_rounds"])
    for i, row in enumerate(rows):
        if ("model", i) not in medians:
            continue
        row["p50_ms_rounds"] = medians[("model", i)]
        row["p50_ms"] = statistics.median(row["p50_ms_rounds"])
        base = next((k for k, x in enumerate(rows) if x["model"] == row["model"] and x["target"] == row["target"]
                     and x["precision"] == "fp32" and ("model", k) in medians), None)
        if base is not None:
            ratios = [b / t for b, t in zip(medians[("model", base)], row["p50_ms_rounds"])]
            row["speedup_vs_fp32_rounds"] = ratios
            row["speedup_vs_fp32"] = statistics.median(ratios)
            front = next(f for f in fronts if f["target"] == row["target"] and f["kind"] == "staged")
            if args.frontend == "runtime":  # the timed graph has no frontend: no share (frontend_place.py has it)
                continue
            if row["precision"] == "fp32":
                row["frontend_share"] = front["p50_ms"] / row["p50_ms"]
            row["frontend_share_of_this"] = front["p50_ms"] / row["p50_ms"]

    print(f"\n{cpu_name()}, batch 1, {args.threads} threads, {args.rounds} interleaved rounds of {args.runs} calls\n")
    print("| model | target | precision | verified | size MB | accuracy | p50 ms | × vs fp32 (rounds) | frontend share |")
    print("|---|---|---|---|---:|---:|---:|---|---:|")
    for row in rows:
        if "p50_ms" not in row:
            print(f"| {row['model']} | {row['target']} | {row['precision']} | {row['status']} | | | | | |")
            continue
        ratios = ", ".join(f"{x:.2f}" for x in row.get("speedup_vs_fp32_rounds", []))
        print(f"| {row['model']} | {row['target']} | {row['precision']} | {row['status']} | {row['size_mb']:.2f} | "
              f"{row['accuracy']:.4f} | {row['p50_ms']:.3f} | {row.get('speedup_vs_fp32', float('nan')):.2f} ({ratios}) | "
              + (f"{100 * row['frontend_share_of_this']:.0f} % |" if "frontend_share_of_this" in row else "— |"))
    print("\n| frontend alone | target | MACs (M) | p50 ms |")
    print("|---|---|---:|---:|")
    for f in fronts:
        print(f"| {f['kind']} | {f['target']} | {f['macs'] / 1e6:.2f} | {f['p50_ms']:.3f} |")
    print("\n| model | MACs (M) | of which frontend | params |")
    print("|---|---:|---:|---:|")
    for label, m in models.items():
        print(f"| {label} ({m['name']}) | {m['macs'] / 1e6:.1f} | {m['frontend_macs'] / 1e6:.1f} | {m['params']:,} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu_name(), "frontend_place": args.frontend, "threads": args.threads, "runs": args.runs,
                                         "rounds": args.rounds, "models": models, "rows": rows, "frontend": fronts},
                                        indent=2))


if __name__ == "__main__":
    main()
