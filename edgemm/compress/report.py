"""The compression report: ``report.json`` (machine-readable) and ``report.md`` (the table a person reads)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

COLUMNS = ("params", "MACs", "fp32 size", "int8 size", "fused", "image-only", "audio-only", "time")


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.2f} MB"


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
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.1f} M | {_mb(r['fp32_bytes'])} | "
            f"{_mb(r.get('int8_bytes'))} | {r['accuracy']:.3f} | {r['accuracy_image_only']:.3f} | "
            f"{r['accuracy_audio_only']:.3f} | {r['seconds']:.0f} s |"
        )
    final = report["stages"][-1]
    lines += [
        "",
        f"Final ({final['name']}) vs teacher: {t['params'] / final['params']:.1f}x fewer parameters, "
        f"{t['macs'] / final['macs']:.1f}x fewer MACs, fused accuracy {100 * (final['accuracy'] - t['accuracy']):+.1f} pts; "
        f"with one modality absent it keeps {_keep(final, t, 'accuracy_image_only')} (image only) and "
        f"{_keep(final, t, 'accuracy_audio_only')} (audio only) of the teacher's accuracy.",
    ]
    scratch = next((r for r in report["stages"] if r["name"] == "scratch"), None)
    if scratch:
        lines.append(f"Distillation vs the same student from scratch: {100 * (final['accuracy'] - scratch['accuracy']):+.1f} pts "
                     f"(final) / {100 * (_get(report, 'distill', scratch)['accuracy'] - scratch['accuracy']):+.1f} pts (after distill).")
    half = 196 * (final["accuracy"] * (1 - final["accuracy"]) / max(final["n"], 1)) ** 0.5
    lines.append(f"Test accuracy of the final model carries a 95 % binomial interval of about ±{half:.1f} pts "
                 f"at n = {final['n']}; smaller differences between rows are within noise.")
    if final.get("float_layers") is not None:
        lines.append(f"int8: {final['quantized_layers']} conv/linear layers quantized; kept in float: "
                     f"{', '.join(final['float_layers']) or 'none'}.")
    return "\n".join(lines) + "\n"


def _keep(final: dict, teacher: dict, key: str) -> str:
    return f"{100 * final[key] / teacher[key]:.0f} %" if teacher[key] else "n/a"


def _get(report: dict, name: str, default: dict) -> dict:
    return next((r for r in report["stages"] if r["name"] == name), default)


def write_report(report: dict[str, Any], out: Path) -> None:
    """Writes ``report.json`` and ``report.md`` atomically."""
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)
