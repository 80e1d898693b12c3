"""Training arithmetic and layout: float32 / bf16 autocast, NCHW / channels-last, teacher and student.

Usage:
    python benchmarks/train_precision.py [--batch 64] [--repeats 7] [--threads 2]
        [--json benchmarks/results/train_precision.json]

For ``av_teacher`` and ``av_student`` on random inputs of the default preprocessing, times one
training step (forward, cross-entropy, backward, AdamW) and one no-grad forward in eval mode (what
distillation asks of the teacher), each in float32 and under ``torch.autocast(bfloat16)``, with the
model's tensors contiguous (NCHW) and channels-last (``edgemm.train.layout``, what training uses);
medians of ``--repeats`` after two warm-up calls, rounds alternating between the four settings. Whether
the CPU has native bf16 (AVX512-BF16 / AMX) is printed: without it bf16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

from edgemm.models import create_model  # noqa: E402
from edgemm.train.layout import channels_last  # noqa: E402
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
    settings = [(dtype, nhwc) for dtype in (None, torch.bfloat16) for nhwc in (False, True)]
    for name in ("av_teacher", "av_student"):
        with contextlib.ExitStack() as layouts:
            models = {}  # one model and optimiser per setting: AdamW's state keeps the layout it was made in
            for s in settings:
                torch.manual_seed(0)
                models[s] = create_model(name, num_classes=10)
                layouts.enter_context(channels_last(models[s], enabled=s[1]))  # as training does
            image, audio, ip, ap = models[settings[0]].example_inputs(a.batch)
            x = (torch.randn_like(image), torch.randn_like(audio) * 0.1, ip, ap)
            y = torch.randint(0, 10, (a.batch,))
            opts = {s: torch.optim.AdamW(m.parameters(), 1e-4) for s, m in models.items()}

            def step(s):
                model, opt = models[s], opts[s]
                model.train()
                with autocast(s[0], cpu):
                    loss = torch.nn.functional.cross_entropy(model(*x).float(), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            def forward(s):
                model = models[s]
                model.eval()
                with torch.no_grad(), autocast(s[0], cpu):
                    model(*x)

            for what, fn in (("train step", step), ("eval forward", forward)):
                times = {s: [] for s in settings}
                for _ in range(a.repeats + 2):  # two warm-up rounds, then alternate so drift hits all alike
                    for s in settings:
                        times[s].append(_once(lambda: fn(s)))
                med = {s: statistics.median(t[2:]) for s, t in times.items()}
                row = {"model": name, "what": what, "batch": a.batch,
                       "fp32_ms": med[(None, False)], "fp32_channels_last_ms": med[(None, True)],
                       "bf16_ms": med[(torch.bfloat16, False)], "bf16_channels_last_ms": med[(torch.bfloat16, True)]}
                row["speedup_bf16"] = row["fp32_ms"] / row["bf16_ms"]
                row["speedup_channels_last_fp32"] = row["fp32_ms"] / row["fp32_channels_last_ms"]
                row["speedup_channels_last_bf16"] = row["fp32_ms"] / row["bf16_channels_last_ms"]
                rows.append(row)
                print(f"{name} {what}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items() if k.endswith("_ms")),
                      file=sys.stderr)

    native = native_bf16(cpu)
    print(f"\n{cpu_name()}, {a.threads} threads, native bf16: {native}, batch {a.batch}, median of {a.repeats}\n")
    print("| model | what | fp32 NCHW ms | fp32 channels-last ms | bf16 NCHW ms | bf16 channels-last ms | best vs fp32 NCHW |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['what']} | {r['fp32_ms']:.0f} | {r['fp32_channels_last_ms']:.0f} | {r['bf16_ms']:.0f} "
              f"| {r['bf16_channels_last_ms']:.0f} | {r['speedup_channels_last_bf16']:.2f}× |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "threads": a.threads, "native_bf16": native,
                                           "torch": torch.__version__, "repeats": a.repeats}, "rows": rows}, indent=2))
    print(f"\nwritten {a.json}")


if __name__ == "__main__":
    main()
