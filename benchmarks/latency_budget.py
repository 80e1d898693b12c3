"""Compression to a latency budget, on real small sets: pruning every layer alike vs latency-aware.

For each set of ``realsets.py`` (built on first use) this distils the default student from the
set's cached teacher once (the shipped recipe's distill stage; both methods then resume from that
same distilled model), sets the budget to ``--factor`` times the distilled student's measured
p90, and runs the prune stage to that budget twice:

- ``uniform``: the recipe's pruning, every channel group by the same ratio (what MACs-driven
  structured pruning does),
- ``latency-aware``: ``--latency-aware``, channels ranked globally by importance per millisecond
  they cost on this backend (the table is measured once and cached).

Each step is exported and timed by ``edgemm.deploy.probe.LatencyProbe`` (the same code as
``edgemm compress --latency-budget``). Afterwards the two final models and the unpruned student are
timed again, interleaved, and the medians reported; accuracy is on the set's test split, beside a
logistic regression on hand-made features computed in the same run.

Usage:
    python benchmarks/latency_budget.py [--sets letters,digits] [--factor 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402

PROFILE = """name: bench-ort-fp32
description: onnxruntime fp32 on this machine's CPU, 2 threads (the benchmark's device)
target: onnx
precision: fp32
backend: onnxruntime
threads: 2
input_size: [640, 480]
latency_budget_ms: 33
"""
METHODS = ("uniform", "latency-aware")


def recipe(stages: tuple[str, ...]):
    """The shipped recipe with only ``stages`` (the benchmark's profile runs fp32: no qat)."""
    import dataclasses

    from edgemm.compress.recipe import load_recipe

    shipped = load_recipe()
    return dataclasses.replace(shipped, stages=tuple(s for s in shipped.stages if s.type in stages))


def distilled(name: str, args, log_dir: Path) -> tuple[Path, dict]:
    """The set's default student distilled from its teacher (trained and cached on first use)."""
    from realsets import build

    from edgemm.compress import compress

    data = str(build(name, args.sets_dir, 100 if name == "digits" else 40, 0))  # as benchmarks/real_suite.py
    out = log_dir / f"{name}-distill"
    with open(out.with_suffix(".log"), "a") as logf:
        report = compress(out=out, data=data, recipe=recipe(("distill",)), resume=True, baseline=False, device="cpu",
                          log=lambda s: print(s, file=logf, flush=True))
    return out, report


def median_latency(probe, checkpoints: dict[str, Path], rounds: int) -> dict[str, float]:
    """Each checkpoint's p90, measured ``rounds`` times in turn; the median per checkpoint."""
    seen: dict[str, list[float]] = {k: [] for k in checkpoints}
    for _ in range(rounds):
        for key, path in checkpoints.items():
            seen[key].append(probe.measure_checkpoint(path)["latency_ms"])
    return {k: statistics.median(v) for k, v in seen.items()}


def paired_p50(probe, checkpoints: dict[str, Path], rounds: int) -> dict[str, dict]:
    """Each checkpoint's p50 and its time relative to the first, timed against each other in
    interleaved rounds in one process (``edgemm profile A B C --rounds``: paired ratios)."""
    from edgemm.train import load_model

    c = probe.compare([load_model(p)[0] for p in checkpoints.values()], rounds=rounds)
    return {k: {"p50_ms": r["p50_ms"], "ratio": r["ratio"], "spread": r["ratio_error"]}
            for k, r in zip(checkpoints, c["rows"])}


def run_set(name: str, args, profile, out_root: Path) -> dict:
    from real_suite import arrays, logistic_baseline

    from edgemm.compress import compress
    from edgemm.compress.budget import LatencyBudget
    from edgemm.deploy.probe import LatencyProbe

    base, report = distilled(name, args, out_root)
    data, teacher = report["data"], report["teacher"]["path"]
    probe = LatencyProbe(LatencyBudget(1e9, profile, stage=args.stage, runs=args.runs_per_measure),
                         labels=report["labels"], data=data)
    fixed = out_root / f"{name}-budget.json"  # a re-run keeps the budget, so finished runs are reused
    if fixed.is_file():
        start_ms, budget_ms = (json.loads(fixed.read_text())[k] for k in ("unpruned_ms_at_start", "budget_ms"))
    else:
        start_ms = median_latency(probe, {"unpruned": base / "model.pt"}, 3)["unpruned"]
        budget_ms = round(args.factor * start_ms, 4)
        fixed.write_text(json.dumps({"unpruned_ms_at_start": start_ms, "budget_ms": budget_ms}))
    print(f"[{name}] unpruned p90 {args.stage} {start_ms:.3f} ms -> budget {budget_ms:.3f} ms")
    results = {}
    for method in METHODS:
        out = out_root / f"{name}-{method}"
        (out / "stages").mkdir(parents=True, exist_ok=True)
        if not (out / "stages" / "00_distill.pt").is_file():
            shutil.copy2(base / "stages" / "00_distill.pt", out / "stages" / "00_distill.pt")
        budget = LatencyBudget(budget_ms, profile, stage=args.stage, runs=args.runs_per_measure,
                               max_ratio=args.max_ratio, step_ratio=args.step_ratio,
                               latency_aware=method == "latency-aware")
        t0 = time.perf_counter()
        with open(out.with_suffix(".log"), "a") as logf:
            r = compress(out=out, data=data, teacher=teacher, recipe=recipe(("distill", "prune")), resume=True,
                         baseline=False, latency=LatencyProbe(budget), device="cpu",
                         log=lambda s: print(s, file=logf, flush=True))
        pruned = next(s for s in r["stages"] if s["name"] == "prune")
        lb = r["latency_budget"]
        results[method] = {"accuracy": pruned["accuracy"], "accuracy_image_only": pruned["accuracy_image_only"],
                           "accuracy_audio_only": pruned["accuracy_audio_only"], "n": pruned["n"],
                           "macs": pruned["macs"], "params": pruned["params"], "steps": lb["steps"],
                           "latency_table": lb.get("latency_table"),
                           "met_while_pruning": lb["steps"][-1]["met"], "seconds": time.perf_counter() - t0,
                           "checkpoint": str(out / "model.pt")}
        print(f"[{name}] {method}: {len(lb['steps']) - 1} steps, accuracy {pruned['accuracy']:.3f}, "
              f"{pruned['macs'] / 1e6:.1f} M MACs, last step {lb['steps'][-1]['latency_ms']:.3f} ms")
    final = median_latency(probe, {"unpruned": base / "model.pt",
                                   **{m: Path(results[m]["checkpoint"]) for m in METHODS}}, args.rounds)
    paired = paired_p50(probe, {"unpruned": base / "model.pt", **{m: Path(results[m]["checkpoint"]) for m in METHODS}},
                        args.rounds)
    for m in METHODS:
        results[m]["p90_ms"] = final[m]
        results[m]["within"] = final[m] <= budget_ms
        results[m]["paired_p50"] = paired[m]
    d = report["stages"][0]
    return {"set": name, "data": data, "budget_ms": budget_ms, "unpruned_ms": final["unpruned"],
            "unpruned_ms_at_start": start_ms, "unpruned_accuracy": d["accuracy"], "unpruned_macs": d["macs"],
            "teacher_accuracy": report["teacher"]["accuracy"],
            "logistic": logistic_baseline(*arrays(data)[::2]), "methods": results}


def table(rows: list[dict], stage: str) -> str:
    lines = [f"| set | model | pruning steps | ratio | MACs | p90 {stage} ms | × unpruned | p50 × unpruned, paired | "
             "within budget | test acc | image-only | audio-only |", "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['set']} | distilled, unpruned | 0 | 0 | {r['unpruned_macs'] / 1e6:.1f} M | "
                     f"{r['unpruned_ms']:.3f} | 1.00 | 1.00 | budget {r['budget_ms']:.3f} ms | {r['unpruned_accuracy']:.3f} | | |")
        for m, x in r["methods"].items():
            last, pp = x["steps"][-1], x.get("paired_p50")
            lines.append(f"| {r['set']} | {m} | {last['step']} | {last['ratio']:g} | {x['macs'] / 1e6:.1f} M | "
                         f"{x['p90_ms']:.3f} | {x['p90_ms'] / r['unpruned_ms']:.2f} | "
                         + (f"{pp['ratio']:.2f} ±{pp['spread']:.2f} | " if pp else "— | ")
                         + f"{'yes' if x['within'] else 'no'} | "
                         f"{x['accuracy']:.3f} | {x['accuracy_image_only']:.3f} | {x['accuracy_audio_only']:.3f} |")
        lr = r["logistic"]
        lines.append(f"| {r['set']} | logistic regression (hand-made features) | | | | | | | | {lr['accuracy']:.3f} | "
                     f"{lr['accuracy_image_only']:.3f} | {lr['accuracy_audio_only']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default="letters,digits")
    p.add_argument("--sets-dir", type=Path, default=Path.home() / ".cache" / "edgemm" / "realsets",
                   help="where the real sets are built")
    p.add_argument("--out", type=Path, default=Path("runs/latency_budget"))
    p.add_argument("--factor", type=float, default=0.5, help="budget = factor x the unpruned student's p90")
    p.add_argument("--stage", default="inference", choices=["inference", "end_to_end"])
    p.add_argument("--max-ratio", type=float, default=0.9)
    p.add_argument("--step-ratio", type=float, default=0.1)
    p.add_argument("--runs-per-measure", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the final timing")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/latency_budget_xeon.json"))
    args = p.parse_args()

    from edgemm.devices import parse_profile
    from edgemm.safeio import load_yaml

    profile = parse_profile(load_yaml(PROFILE, "benchmark profile"), "benchmark profile")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_set(name, args, profile, args.out) for name in args.sets.split(",")]
    print(f"\nLatency budget = {args.factor} x the distilled student's p90 {args.stage}; {profile.target} "
          f"{profile.precision} on {profile.backend}, {profile.threads} threads; {cpu_name()}\n")
    print(table(rows, args.stage))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpu": cpu_name(), "profile": profile.to_dict(), "factor": args.factor,
                                     "stage": args.stage, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
