"""The compressed default student exported to every target: size, accuracy, parity, latency.

Usage:
    python benchmarks/export_default.py [--run runs/compress] [--precisions fp32,int8]
        [--json benchmarks/results/export_default.json]

Exports ``RUN/model.pt`` (an ``edgemm compress`` output; run ``edgemm compress`` first) to ONNX,
OpenVINO and TFLite, lets ``edgemm export`` verify each bundle, then evaluates every bundle on the
whole test split through the torch-free runtime (fused, image-only, audio-only accuracy) next to
the PyTorch float and fake-quant int8 models, and times single-sample inference (median of
``--repeats`` calls, batch 1, after warm-up, one runtime thread setting for all).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

from edgemm.data import open_dataset  # noqa: E402
from edgemm.export import export  # noqa: E402
from edgemm.export.source import load_source, torch_runner  # noqa: E402
from edgemm.metrics import metrics  # noqa: E402
from edgemm.runtime import evaluate_session, load  # noqa: E402
from edgemm.runtime.evaluate import predict_logits  # noqa: E402


def _size(bundle: Path, files: dict[str, str]) -> int:
    return sum((bundle / f).stat().st_size for f in files.values())


def _latency_ms(session, test, repeats: int) -> float:
    item = test[0]
    args = (item["image"][None], item["audio"][None], np.ones(1, np.float32), np.ones(1, np.float32))
    for _ in range(5):
        session.run(*args)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(*args)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _torch_row(name, model, test, labels) -> dict:
    r = metrics(*predict_logits(torch_runner(model), test), labels)
    return {"format": name, "accuracy": r.accuracy, "accuracy_image_only": r.accuracy_image_only,
            "accuracy_audio_only": r.accuracy_audio_only, "n": r.n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("runs/compress"))
    p.add_argument("--targets", default="onnx,openvino,tflite")
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: each backend's own)")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/export_default.json"))
    a = p.parse_args()

    src = load_source(a.run)
    data = src.ckpt.get("data") or "default"
    if not Path(str(data)).exists():
        data = "default"  # the generated set is rebuilt identically from its version and seed
    test = open_dataset(data, src.preprocess, splits=("test",), labels=src.labels).test
    rows = [_torch_row("pytorch fp32", src.model, test, src.labels)]
    if src.int8 is not None:
        rows.append(_torch_row("pytorch int8 (fake-quant program)", src.int8, test, src.labels))
    rows[0]["size_bytes"] = (a.run / "model.pt").stat().st_size
    for target in a.targets.split(","):
        for precision in a.precisions.split(","):
            out = a.run / "bundles" / f"{src.name}-{target}-{precision}.edgemm"
            t0 = time.perf_counter()
            manifest = export(a.run / "model.pt", target=target, precision=precision, out=out, calib_data=data,
                              log=lambda s: None)
            seconds = time.perf_counter() - t0
            session = load(out, threads=a.threads)
            r = evaluate_session(session, test, src.labels)
            v = manifest.verification
            rows.append({"format": f"{target} {precision}", "size_bytes": _size(out, manifest.files),
                         "accuracy": r.accuracy, "accuracy_image_only": r.accuracy_image_only,
                         "accuracy_audio_only": r.accuracy_audio_only, "n": r.n,
                         "verification": v["status"], "top1_agreement": v["top1_agreement"],
                         "max_abs_logit_diff": v["max_abs_logit_diff"], "reference": v["reference"],
                         "quantization": (manifest.quantization or {}).get("method"),
                         "latency_ms_p50": _latency_ms(session, test, a.repeats), "export_seconds": seconds})
            print(f"{rows[-1]['format']}: {r.accuracy:.3f} ({v['status']}) {seconds:.0f} s", flush=True)

    print(f"\n{src.name} from {a.run}, test split n = {rows[0]['n']}, {cpu_name()}, "
          f"{os.cpu_count()} cores\n")
    print("| format | size | fused | image-only | audio-only | verification (top-1 agr., max abs Δlogit) "
          "| quantization | latency p50 (batch 1) |")
    print("|---|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.2f} MB" if "size_bytes" in r else ""
        ver = (f"{r['verification']} ({r['top1_agreement']:.3f}, {r['max_abs_logit_diff']:.1e})"
               if "verification" in r else "")
        lat = f"{r['latency_ms_p50']:.2f} ms" if "latency_ms_p50" in r else ""
        print(f"| {r['format']} | {size} | {r['accuracy']:.3f} | {r['accuracy_image_only']:.3f} | "
              f"{r['accuracy_audio_only']:.3f} | {ver} | {r.get('quantization') or ''} | {lat} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "cores": os.cpu_count(), "run": str(a.run),
                                           "model": src.name, "sha256": src.sha256, "threads": a.threads},
                                  "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
