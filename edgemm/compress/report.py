"""The compression report: ``report.json`` (machine-readable) and ``report.md`` (the table a person reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgemm.atomic import atomic_write_text

BASELINE = "scratch"  # the report row of the from-scratch baseline (same student, labels only)

COLUMNS = ("params", "MACs", "fp32 size", "int8 size", "fused", "image-only", "audio-only", "time")


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.2f} MB"


def _without_frontend(teacher: dict[str, Any], final: dict[str, Any]) -> str:
    """The MAC ratio of the layers alone: both compute the same log-mel frontend, which a
    ``--frontend runtime`` bundle runs outside the model (empty for reports without the figure)."""
    ft, ff = teacher.get("frontend_macs"), final.get("frontend_macs")
    if not ft or ff is None or final["macs"] <= ff:
        return ""
    return (f" ({(teacher['macs'] - ft) / (final['macs'] - ff):.1f}x without the log-mel frontend, "
            f"{ft / 1e6:.1f} M MACs in the teacher's graph, {ff / 1e6:.1f} M in the student's)")


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table, one row per model state, plus ratios against the teacher."""
    t = report["teacher"]
    lines = [
        f"# edgemm compress report\n\ndata: `{report['data']}` · test samples: {t['n']} · device: {report['device']} · "
        f"total {report['total_seconds'] / 60:.1f} min\n",
        "| state | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for r in [t] + report["stages"]:
        name = r["name"] + (" (= teacher)" if r.get("same_as") == "teacher" else "")
        lines.append(
            f"| {name} | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.1f} M | {_mb(r['fp32_bytes'])} | "
            f"{_mb(r.get('int8_bytes'))} | {r['accuracy']:.3f} | {r['accuracy_image_only']:.3f} | "
            f"{r['accuracy_audio_only']:.3f} | {r['seconds']:.0f} s |"
        )
    final = report["stages"][-1]
    lines += [
        "",
        f"Final ({final['name']}) vs teacher: {t['params'] / final['params']:.1f}x fewer parameters, "
        f"{t['macs'] / final['macs']:.1f}x fewer MACs{_without_frontend(t, final)}, "
        f"fused accuracy {100 * (final['accuracy'] - t['accuracy']):+.1f} pts; "
        f"with one modality absent it keeps {_keep(final, t, 'accuracy_image_only')} (image only) and "
        f"{_keep(final, t, 'accuracy_audio_only')} (audio only) of the teacher's accuracy.",
    ]
    budget = _budget(report["stages"])
    if budget:
        lines.append(budget)
    lines += [line for line in (teacher_vs_scratch(report), int8_vs_float(report["stages"])) if line]
    scratch = next((r for r in report["stages"] if r["name"] == BASELINE), None)
    if scratch:
        lines.append(f"Distillation vs the same student from scratch: {100 * (final['accuracy'] - scratch['accuracy']):+.1f} pts "
                     f"(final) / {100 * (_get(report, 'distill', scratch)['accuracy'] - scratch['accuracy']):+.1f} pts (after distill).")
        for name, test in (report.get("vs_scratch") or {}).items():
            verdict = "significant" if test["p_value"] < 0.05 else "not significant"
            lines.append(f"Paired on the same {test['n']} test samples, {name} vs scratch: {test['only_this']} right only "
                         f"by {name}, {test['only_scratch']} only by scratch; McNemar exact p = {test['p_value']:.3f} "
                         f"({verdict} at 5 %).")
    half = 196 * (final["accuracy"] * (1 - final["accuracy"]) / max(final["n"], 1)) ** 0.5
    lines.append(f"Test accuracy of the final model carries a 95 % binomial interval of about ±{half:.1f} pts "
                 f"at n = {final['n']}; smaller differences between rows are within noise.")
    if final.get("float_layers") is not None:
        lines.append(f"int8: {final['quantized_layers']} conv/linear layers quantized; kept in float: "
                     f"{', '.join(final['float_layers']) or 'none'}.")
    lines += _latency(report.get("latency_budget"))
    warnings = [f"{r['name']}: {w}" for r in [t] + report["stages"] for w in r.get("warnings", [])]
    warnings += report_warnings(report)
    if warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def _scratch(report: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in report["stages"] if r["name"] == BASELINE), None)


def teacher_vs_scratch(report: dict[str, Any]) -> str | None:
    """The teacher's accuracy beside the same student trained alone (the scratch baseline)."""
    t, scratch = report["teacher"], _scratch(report)
    if scratch is None:
        return None
    if scratch.get("same_as") == "teacher":
        return (f"Teacher: the student itself trained alone by edgemm train's recipe ({t['accuracy']:.3f} fused), "
                "so it is also the scratch baseline; the later stages distil from it (born-again).")
    return (f"Teacher {t['accuracy']:.3f} fused vs the same student trained alone {scratch['accuracy']:.3f} "
            f"({100 * (t['accuracy'] - scratch['accuracy']):+.1f} pts).")


def int8_vs_float(rows: list[dict[str, Any]], max_drop: float = 0.01) -> str | None:
    """Whether the int8 model keeps the accuracy of the float student it was made from (the row before)."""
    final = rows[-1]
    floats = [r for r in rows[:-1] if r["name"] != BASELINE]
    if final.get("int8_bytes") is None or not floats:
        return None
    before = floats[-1]
    drop = before["accuracy"] - final["accuracy"]
    verdict = "keeps" if drop <= max_drop + 1e-9 else "LOSES"
    return (f"int8 check: {final['name']} {final['accuracy']:.3f} vs the float student after {before['name']} "
            f"{before['accuracy']:.3f} ({100 * (final['accuracy'] - before['accuracy']):+.1f} pts): it {verdict} the float accuracy "
            f"(tolerance {100 * max_drop:g} pt).")


def report_warnings(report: dict[str, Any], max_drop: float = 0.01) -> list[str]:
    """Warnings about the run as a whole: a teacher weaker than the student alone, an int8 model
    that lost accuracy."""
    out = []
    t, scratch = report["teacher"], _scratch(report)
    if scratch is not None and scratch.get("same_as") != "teacher" and t["accuracy"] < scratch["accuracy"]:
        out.append(f"distilling from a weaker teacher: the teacher ({t['accuracy']:.3f}) is below the same student "
                   f"trained alone ({scratch['accuracy']:.3f}); train it longer, pass a better --teacher, or leave "
                   "the default (the student teaches itself)")
    line = int8_vs_float(report["stages"], max_drop)
    if line and "LOSES" in line:
        out.append(line)
    return out


def _latency(budget: dict[str, Any] | None) -> list[str]:
    """The latency-budget section: each prune step's measured latency, and the final model's."""
    if not budget:
        return []
    d = budget["device"]
    lines = ["", f"**Latency budget**: p90 {budget['stage']} <= {budget['ms']:g} ms, device profile "
             f"{budget['device_profile']} ({d['target']} {d['precision']} on {d['backend']}), measured on "
             f"{budget['measured_on']} ({budget['runs']} runs each)", "",
             "| step | ratio | params | MACs | p90 ms | p50 ms | precision | val acc | within |",
             "|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for s in budget["steps"]:
        val = "" if s.get("val_accuracy") is None else f"{s['val_accuracy']:.3f}"
        lines.append(f"| {s['step']} | {s['ratio']:g} | {s['params'] / 1e6:.3f} M | {s['macs'] / 1e6:.1f} M | "
                     f"{s['latency_ms']:.3f} | {s['p50_ms']:.3f} | {s['precision']} | {val} | "
                     f"{'yes' if s['met'] else 'no'} |")
    final = budget.get("final")
    if final:
        lines += ["", f"Final model: {final['latency_ms']:.3f} ms p90 ({final['precision']}): "
                  + ("within the budget." if final["met"] else
                     f"OVER the budget (closest reached while pruning: {budget['reached_ms']:.3f} ms).")]
    return lines


def correct_string(right) -> str:
    """Per-sample results as stored in report rows (``test_correct``): ``"1"`` where ``right`` is true."""
    return "".join("1" if ok else "0" for ok in right)


def mcnemar(correct: str, baseline: str) -> dict[str, Any]:
    """Exact McNemar test of two models scored on the same samples.

    Args:
        correct: Per sample, ``"1"`` where the model was right, else ``"0"``.
        baseline: The same for the model it is compared with.

    Returns:
        ``n``, ``only_this`` / ``only_scratch`` (samples only one of the two got right) and the
        two-sided ``p_value`` of "both are equally accurate" (a binomial test on the discordant
        samples, which is all a paired comparison can learn from).

    Raises:
        ValueError: If the two were scored on different numbers of samples.
    """
    from scipy.stats import binomtest

    if len(correct) != len(baseline):
        raise ValueError(f"paired test needs the same samples: {len(correct)} vs {len(baseline)} results")
    only_this = sum(a == "1" and b == "0" for a, b in zip(correct, baseline))
    only_base = sum(a == "0" and b == "1" for a, b in zip(correct, baseline))
    p = binomtest(only_this, only_this + only_base, 0.5).pvalue if only_this + only_base else 1.0
    return {"n": len(correct), "only_this": only_this, "only_scratch": only_base, "p_value": float(p)}


def vs_scratch(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """McNemar tests of the distilled and the final student against the scratch baseline.

    Empty when there is no baseline, or when a row has no per-sample results (a stage reused from
    a run written before they were recorded).
    """
    by_name = {r["name"]: r for r in rows}
    scratch = by_name.get(BASELINE)
    if scratch is None or "test_correct" not in scratch:
        return {}
    tests = {}
    for name in dict.fromkeys(["distill", rows[-1]["name"]]):
        row = by_name.get(name)
        if row is not None and name != BASELINE and "test_correct" in row:
            tests[name] = mcnemar(row["test_correct"], scratch["test_correct"])
    return tests


def _budget(rows: list[dict[str, Any]]) -> str | None:
    """Which rows trained how many epochs: the final model's budget is the sum over its stages.

    None for reports from runs written before rows recorded ``epochs``.
    """
    if any("epochs" not in r for r in rows):
        return None
    stages = [r for r in rows if r["name"] != BASELINE]
    total = sum(r["epochs"] for r in stages)
    parts = ", ".join(f"{r['name']} {r['epochs']}" for r in stages)
    line = f"Student training epochs: the final model {total} ({parts})"
    scratch = next((r for r in rows if r["name"] == BASELINE), None)
    if scratch is None:
        return line + "."
    if scratch.get("same_as") == "teacher":
        return line + f"; the scratch baseline is the teacher, {scratch['epochs']} epochs of edgemm train's schedule."
    line += f"; the scratch baseline {scratch['epochs']} (the distill stage's budget)."
    extra = total - scratch["epochs"]
    if extra > 0:
        line += (f" The final model trained {extra} epochs more than the baseline, so only the distill row is "
                 f"compared with it at an equal budget.")
    return line


def _keep(final: dict, teacher: dict, key: str) -> str:
    return f"{100 * final[key] / teacher[key]:.0f} %" if teacher[key] else "n/a"


def _get(report: dict, name: str, default: dict) -> dict:
    return next((r for r in report["stages"] if r["name"] == name), default)


def write_report(report: dict[str, Any], out: Path) -> None:
    """Writes ``report.json`` and ``report.md`` atomically."""
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", markdown(report))):
        atomic_write_text(out / name, text)
