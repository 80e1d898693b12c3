"""Training arithmetic: float32 against bf16 autocast, for the teacher and the student.

Usage:
    python benchmarks/train_precision.py [--batch 64] [--repeats 7] [--threads 2]
        [--json benchmarks/results/train_precision.json]

For ``av_teacher`` and ``av_student`` on random inputs of the default preprocessing, times one
training step (forward, cross-entropy, backward, AdamW) and one no-grad forward in eval mode (what
distillation asks of the teacher), each in float32 and under ``torch.autocast(bfloat16)``; medians
of ``--repeats`` after two warm-up calls, rounds alternating between the two precisions. Whether
the CPU has native bf16 (AVX512-BF16 / AMX) is printed: without it bf16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

from edgemm.models import create_model  # noqa: E402
from edgemm.train.precision import autocast, native_bf16  # noqa: E402


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/train_precision.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cpu = torch.device("cpu")
    rows = []
    for name in ("av_teacher", "av_student"):
        torch.manual_seed(0)
        model = create_model(name, num_classes=10)
        image, audio, ip, ap = model.example_inputs(a.batch)
        x = (torch.randn_like(image), torch.randn_like(audio) * 0.1, ip, ap)
        y = torch.randint(0, 10, (a.batch,))
        opt = torch.optim.AdamW(model.parameters(), 1e-4)

        def step(dtype):
            model.train()
            with autocast(dtype, cpu):
                loss = torch.nn.functional.cross_entropy(model(*x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def forward(dtype):
            model.eval()
            with torch.no_grad(), autocast(dtype, cpu):
                model(*x)

        for what, fn in (("train step", step), ("eval forward", forward)):
            times = {None: [], torch.bfloat16: []}
            for dtype in times:
                fn(dtype), fn(dtype)
            for _ in range(a.repeats):  # alternate, so drift hits both alike
                for dtype in times:
                    times[dtype].append(_once(lambda: fn(dtype)))
            fp32, bf16 = statistics.median(times[None]), statistics.median(times[torch.bfloat16])
            rows.append({"model": name, "what": what, "batch": a.batch, "fp32_ms": fp32, "bf16_ms": bf16,
                         "speedup": fp32 / bf16})
            print(f"{name} {what}: fp32 {fp32:.0f} ms, bf16 {bf16:.0f} ms", file=sys.stderr)

    native = native_bf16(cpu)
    print(f"\n{cpu_name()}, {a.threads} threads, native bf16: {native}, batch {a.batch}, median of {a.repeats}\n")
    print("| model | what | fp32 ms | bf16 autocast ms | speed-up |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['what']} | {r['fp32_ms']:.0f} | {r['bf16_ms']:.0f} | {r['speedup']:.2f}× |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "threads": a.threads, "native_bf16": native,
                                           "torch": torch.__version__, "repeats": a.repeats}, "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
