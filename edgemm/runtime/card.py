"""The model card of a bundle: what the model is for, what it was trained and checked on, how well
it does with each modality missing, where it came from, and what it is known not to do.

Every figure comes from the bundle's manifest (``verification``: the exported model run by the
torch-free runtime on held-out samples, per condition and per class; ``source``: the checkpoint,
data and compression recipe; ``card.lineage``: the compress report's stages). ``edgemm export``
writes it as ``MODEL_CARD.md`` beside the model; ``edgemm run`` prints ``card_line`` on start.
Torch-free, like the rest of ``edgemm.runtime``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemm.runtime.manifest import Manifest

CARD_FILE = "MODEL_CARD.md"
CONDITION_NAMES = {"fused": "camera + microphone", "image_only": "camera only", "audio_only": "microphone only"}
WEAK_MODALITY_POINTS = 15.0  # a single modality this far below fused gets a line under "Limits"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def card_line(manifest: Manifest) -> str:
    """One line: model, classes, format, held-out accuracy with each modality, verification."""
    v = manifest.verification or {}
    cond = v.get("conditions") or {}
    acc = "" if "accuracy" not in v else (
        f"; accuracy {_pct(v['accuracy'])} on {v.get('samples', '?')} held-out samples"
        + (f" (camera only {_pct(cond['image_only']['accuracy'])}, microphone only "
           f"{_pct(cond['audio_only']['accuracy'])})" if {"image_only", "audio_only"} <= set(cond) else ""))
    return (f"{manifest.name}: {len(manifest.labels)} classes, {manifest.target} {manifest.precision}{acc}; "
            f"verification {v.get('status', 'not run')}")


def lineage_from_report(report: dict[str, Any]) -> dict[str, Any]:
    """The part of an ``edgemm compress`` report a card shows: the teacher and each stage's row."""
    def row(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r[k] for k in ("name", "accuracy", "accuracy_image_only", "accuracy_audio_only", "params", "n")
                if k in r}

    teacher = report.get("teacher") or {}
    return {"teacher": {**row(teacher), "model": (report.get("recipe") or {}).get("teacher", {}).get("model", "")},
            "stages": [row(r) for r in report.get("stages", [])],
            "labels_fraction": (report.get("transfer") or {}).get("labels_fraction")}


def limits(manifest: Manifest) -> list[str]:
    """What the model is known not to do, from its own figures."""
    v = manifest.verification or {}
    cond, out = v.get("conditions") or {}, []
    fused = (cond.get("fused") or {}).get("accuracy")
    for key in ("image_only", "audio_only"):
        alone = (cond.get(key) or {}).get("accuracy")
        if fused is not None and alone is not None and (fused - alone) * 100 >= WEAK_MODALITY_POINTS:
            out.append(f"With the {CONDITION_NAMES[key]} (the other one covered, muted or broken) accuracy falls "
                       f"from {fused:.3f} to {alone:.3f}.")
    per_class = v.get("per_class") or {}
    weak = sorted((c for c in per_class.items() if c[1].get("n")), key=lambda c: c[1]["accuracy"])[:3]
    if weak and fused is not None and weak[0][1]["accuracy"] < fused:
        out.append("Weakest classes on the held-out samples: " + ", ".join(
            f"{name} {c['accuracy']:.2f} (n = {c['n']})" for name, c in weak) + ".")
    cal = manifest.calibration
    out.append(f"It answers one of its {len(manifest.labels)} classes for anything it sees and hears: there is no "
               "'none of these' class; `edgemm run --threshold P` leaves low scores unlabelled"
               + (f" (`--threshold auto`: {cal['threshold']:.2f}, below)." if cal else "."))
    out.append("Scores are softmax outputs, not calibrated probabilities." if not cal else
               f"Scores are calibrated on {cal['samples']} validation samples only (temperature {cal['temperature']:.3g}); "
               "on other data they may be over- or under-confident again.")
    if "samples" in v:
        out.append(f"Checked on {v['samples']} samples of {v.get('data', 'its data')}: accuracy on other people, rooms, "
                   "cameras and microphones is not known until measured (`edgemm eval BUNDLE --data YOURS`).")
    return out


def card_markdown(manifest: Manifest) -> str:
    """``MODEL_CARD.md``."""
    src, v, pre = manifest.source or {}, manifest.verification or {}, manifest.preprocess or {}
    model = src.get("model") or {}
    image, audio = pre.get("image") or {}, pre.get("audio") or {}
    seconds = audio.get("clip_seconds") or (audio.get("clip_samples", 0) / audio["sample_rate"]
                                            if audio.get("sample_rate") else None)
    lines = [f"# Model card: {manifest.name} ({manifest.target} {manifest.precision})", "",
             card_line(manifest), "", "## Intended use", "",
             f"Classifies a camera frame ({image.get('size', '?')} px) together with the last "
             f"{'?' if seconds is None else f'{seconds:g}'} s of microphone audio "
             f"({audio.get('sample_rate', '?')} Hz) into one of {len(manifest.labels)} classes: "
             + ", ".join(f"`{c}`" for c in manifest.labels) + ".", "", "## Training data and model", "",
             f"- model: `{model.get('name', manifest.name)}` {model.get('kwargs') or ''}".rstrip(),
             f"- data: `{src.get('data', 'unknown')}`", f"- checkpoint: `{src.get('checkpoint', 'unknown')}` "
             f"(sha256 {str(src.get('sha256', ''))[:12]})"]
    recipe = src.get("recipe")
    if recipe:
        lines.append("- compression: student `" + str(recipe.get("student")) + "`, teacher `"
                     + str((recipe.get("teacher") or {}).get("model")) + "`, stages "
                     + " → ".join(s.get("type", "?") for s in recipe.get("stages", [])))
    lineage = (manifest.card or {}).get("lineage")
    if lineage:
        lines += ["", "## Lineage (the compress report)", "", "| model state | accuracy | camera only | microphone only | params |",
                  "|---|---:|---:|---:|---:|"]
        for r in [{**lineage["teacher"], "name": f"teacher {lineage['teacher'].get('model', '')}".strip()}] + lineage["stages"]:
            lines.append(f"| {r.get('name')} | {_pct(r.get('accuracy'))} | {_pct(r.get('accuracy_image_only'))} | "
                         f"{_pct(r.get('accuracy_audio_only'))} | {r.get('params', '—')} |")
        if lineage.get("labels_fraction") not in (None, 1.0):
            lines.append(f"\nTrained with {lineage['labels_fraction']:.0%} of the training labels.")
    lines += ["", "## Verification and held-out accuracy", ""]
    if "conditions" in v:
        lines += [f"The exported model, run by `{v.get('backend', '?')}`, against the {v.get('reference', '?')} "
                  f"reference on {v.get('samples', '?')} samples ({v.get('data', '?')}): **{v.get('status')}** "
                  f"({v.get('message', '')}).", "",
                  "| condition | accuracy | reference accuracy | top-1 agreement | max \\|Δ logit\\| |", "|---|---:|---:|---:|---:|"]
        for key, c in v["conditions"].items():
            lines.append(f"| {CONDITION_NAMES.get(key, key)} | {_pct(c.get('accuracy'))} | {_pct(c.get('reference_accuracy'))} "
                         f"| {_pct(c.get('top1_agreement'))} | {c.get('max_abs_logit_diff', 0):.2g} |")
        if v.get("per_class"):
            lines += ["", "| class | n | accuracy (camera + microphone) |", "|---|---:|---:|"]
            lines += [f"| {name} | {c['n']} | {_pct(c['accuracy'])} |" for name, c in v["per_class"].items()]
    else:
        lines.append(f"Not verified (status: {v.get('status', 'not run')}).")
    cal = manifest.calibration
    if cal:
        lines += ["", "## Calibration", "", f"{cal['method']} on {cal['samples']} validation samples ({cal['data']}): "
                  f"temperature **{cal['temperature']:.3g}**; expected calibration error {cal['ece_before']:.3f} → "
                  f"{cal['ece_after']:.3f}, negative log-likelihood {cal['nll_before']:.3f} → {cal['nll_after']:.3f}. "
                  f"`edgemm run --threshold auto` leaves answers below **{cal['threshold']:.2f}** unlabelled "
                  f"({cal['threshold_rule']})."]
    if manifest.quantization:
        q = manifest.quantization
        lines += ["", "## Quantization", "", f"- {q.get('method', 'int8')}: {q.get('tool', '')}".rstrip(": ")
                  + (f"; {len(q['kept_float'])} layer(s) kept float" if q.get("kept_float") else "")]
    if manifest.selection:
        lines += ["", "## Precision chosen (`--precision auto`)", "", f"{manifest.selection.get('rule', '')}: "
                  f"**{manifest.selection.get('chosen')}**", ""]
        lines += [f"- {c['precision']}: {c['status']}" + (f", inference p50 {c['inference_p50_ms']:.3f} ms on "
                  f"{c.get('backend', '?')}" if "inference_p50_ms" in c else "") for c in manifest.selection.get("candidates", [])]
    evaluations = (manifest.card or {}).get("evaluations") or []
    if evaluations:
        lines += ["", "## Evaluated since export (`edgemm eval --card`)", "",
                  "| when | data | n | accuracy | camera only | microphone only | events F1 |", "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {e.get('date', '')} | {e.get('data', '')} | {e.get('n', '—')} | {_pct(e.get('accuracy'))} | "
                  f"{_pct(e.get('accuracy_image_only'))} | {_pct(e.get('accuracy_audio_only'))} | "
                  f"{_pct(e.get('event_f1'))} |" for e in evaluations]
    lines += ["", "## Limits", ""] + [f"- {line}" for line in limits(manifest)]
    lines += ["", f"Written by edgemm {manifest.edgemm_version} on {manifest.created}. Latency and energy on a device: "
              "`edgemm profile BUNDLE --device-profile P`.", ""]
    return "\n".join(lines)


def append_evaluation(bundle: str | Path, entry: dict[str, Any]) -> Path:
    """Adds ``entry`` (an ``edgemm eval`` result: ``data``, ``n``, accuracies or ``event_f1``) to the
    bundle's card, dated, and rewrites ``MODEL_CARD.md`` and the manifest; returns the card's path."""
    import datetime

    from edgemm.atomic import atomic_write_text
    from edgemm.runtime.manifest import read_manifest, write_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    card = dict(manifest.card or {"file": CARD_FILE})
    card["evaluations"] = [*card.get("evaluations", []),
                           {"date": datetime.date.today().isoformat(), **entry}]
    manifest.card = card
    card["file"] = CARD_FILE  # never a path the manifest names: the card stays inside its bundle
    path = atomic_write_text(bundle / CARD_FILE, card_markdown(manifest))
    write_manifest(manifest, bundle)
    return path
