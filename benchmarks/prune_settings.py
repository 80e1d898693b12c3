"""Stage settings compared: the prune (or QAT / PTQ) stage re-run from a compress run's student.

Usage:
    python benchmarks/prune_settings.py RUN_DIR [RUN_DIR ...] [--on heldout|test] [--seed 2] [--json out.json]
        [--stage prune|qat|ptq] [--config '{"ratio": 0.4, "steps": 1, "finetune_epochs": 6, "lr": 0.001}' ...]

For each run and each ``--config`` (fields of the stage's config over the run's own stage of that
type), loads the student the run's stage started from (for ``qat`` and ``ptq``: the student the
run's int8 stage started from) and the run's teacher, runs the stage handler as ``edgemm compress``
did (the run's kept-label fraction and seed, distillation fine-tuning, the teacher's arithmetic from
the run's recipe), and evaluates the result (the int8 model of an int8 stage): ``--on heldout`` on 3000
unseen samples of another generator seed (the generated default set; 95 % interval about ±0.9
pts), ``--on test`` on the run's own test split (real sets), with the per-sample results for paired
tests. Sizes and the stage's wall time beside it. Without ``--config`` the defaults compare
one-shot pruning fine-tuned at 1e-3 and at 3e-3, and a milder 0.3 ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from benchmarks_common import heldout_set  # benchmarks/ is the script's directory

from edgemm.compress.prune import count_macs_params
from edgemm.compress.recipe import STAGES
from edgemm.compress.report import correct_string
from edgemm.compress.stages import StageContext
from edgemm.data import open_dataset
from edgemm.data.labels import with_label_fraction
from edgemm.metrics import metrics
from edgemm.train import load_model
from edgemm.train.evaluation import predict_logits
from edgemm.train.precision import autocast_dtype

DEFAULT_CONFIGS = (
    '{"ratio": 0.4, "steps": 1, "finetune_epochs": 6, "lr": 0.001}',
    '{"ratio": 0.4, "steps": 1, "finetune_epochs": 6, "lr": 0.003}',
    '{"ratio": 0.3, "steps": 1, "finetune_epochs": 6, "lr": 0.001}',
)


def prune_rows(run: Path, configs: list[str], on: str, seed: int, stage: str = "prune") -> dict:
    """Each config's ``stage`` from ``run``'s student before it, evaluated ``on`` held-out or test data."""
    report = json.loads((run / "report.json").read_text())
    names = [s["name"] for s in report["stages"]]
    stage_spec = STAGES.get(stage)
    # an int8 stage starts from the student the run's int8 stage (whichever) started from
    anchor = next((n for n in names if n in STAGES.names() and STAGES.get(n).quantizes), None) if stage_spec.quantizes else stage
    if anchor not in names:
        sys.exit(f"{run}: the run has no {stage} stage to start from (stages: {names})")
    before = names[names.index(anchor) - 1]  # the student the stage received (a born-again run's
    start = next((run / "stages").glob(f"*_{before}.pt"))  # scratch row is the teacher: no file of its own)
    own = next((s for s in report["recipe"]["stages"] if s["type"] == stage), {})
    teacher, ckpt = load_model(report["teacher"]["path"])
    cpu = torch.device("cpu")
    data = report["data"] if Path(report["data"]).exists() else "default"  # the run's set, else regenerate it
    splits = open_dataset(data, teacher.preprocess, labels=ckpt["labels"])
    run_seed = report.get("seed", 0)
    splits.train = with_label_fraction(splits.train, report.get("transfer", {}).get("labels_fraction", 1.0), run_seed)
    scored = heldout_set(teacher.preprocess, ckpt["labels"], seed=seed) if on == "heldout" else splits.test
    precision = report["recipe"]["teacher"].get("precision") or "fp32"
    ctx = StageContext(teacher=teacher, splits=splits, device=cpu, seed=run_seed, log=lambda s: None,
                       teacher_amp=autocast_dtype(precision, cpu))
    rows = []
    for spec in configs:
        fields = {k: v for k, v in own.items() if k != "type"} | json.loads(spec)
        student, _ = load_model(start)
        t0 = time.perf_counter()
        out = stage_spec.runner()(student, ctx, stage_spec.config(**fields))
        pruned = out.int8 if out.int8 is not None else out.model
        seconds = time.perf_counter() - t0
        macs, params = count_macs_params(out.model)
        logits, y = predict_logits(pruned, scored, device=cpu)  # as compress's report rows score
        r = metrics(logits, y, ckpt["labels"])
        rows.append({"config": json.loads(spec), "params": params, "macs": macs, "accuracy": r.accuracy,
                     "accuracy_image_only": r.accuracy_image_only, "accuracy_audio_only": r.accuracy_audio_only,
                     "n": r.n, "seconds": seconds, "correct": correct_string(logits["fused"].argmax(1) == y)})
        print(f"{run} {spec}: {r.accuracy:.3f} ({seconds:.0f} s)", file=sys.stderr)
    return {"run": str(run), "start": str(start), "on": on, "stage": stage,
            "recorded": report["stages"][names.index(anchor)]["accuracy"], "recorded_stage": anchor,
            "recorded_before": report["stages"][names.index(before)]["accuracy"], "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="`edgemm compress --out` directories with a prune stage")
    p.add_argument("--config", action="append", help="PruneConfig fields as JSON, over the run's own (repeatable)")
    p.add_argument("--on", choices=("heldout", "test"), default="heldout")
    p.add_argument("--seed", type=int, default=2, help="--on heldout: the generator seed of the held-out set")
    p.add_argument("--stage", choices=("prune", "qat", "ptq"), default="prune")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    results = []
    for run in a.runs:
        configs = a.config or (list(DEFAULT_CONFIGS) if a.stage == "prune" else ["{}"])
        results.append(prune_rows(run, configs, a.on, a.seed, a.stage))
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps({"on": a.on, "seed": a.seed, "stage": a.stage, "threads": torch.get_num_threads(),
                                          "runs": results},
                                         indent=2))
    print(f"\n{torch.get_num_threads()} threads; each row's {a.stage} stage starts from the student its run's stage started from\n")
    print("| run | config | params | fused (n) | image-only | audio-only | stage time |\n|---|---|---:|---:|---:|---:|---:|")
    for res in results:
        for r in res["rows"]:
            print(f"| {Path(res['run']).name} | `{json.dumps(r['config'])}` | {r['params'] / 1e6:.3f} M | {r['accuracy']:.3f} "
                  f"({r['n']}) | {r['accuracy_image_only']:.3f} | {r['accuracy_audio_only']:.3f} | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
