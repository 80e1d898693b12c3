"""Accuracy of calibrated ONNX int8 with int8 vs uint8 activations on a real set, beside the logistic baseline.

The companion of ``int8_activations.py`` (which times the two): exports CHECKPOINT to ONNX fp32 and
to calibrated int8 twice, once with int8 activations (what ``edgemm export`` did before) and once
with uint8 activations (what it does now), evaluates each bundle on DATA's test split through the
runtime, and computes ``real_suite.py``'s logistic-regression baseline in the same run.

    python benchmarks/realsets.py --out ~/.cache/edgemm/realsets
    edgemm train --data ~/.cache/edgemm/realsets/digits-v2-100-s0/manifest.csv --out runs/digits-train
    python benchmarks/int8_activations_accuracy.py runs/digits-train/best.pt \\
        ~/.cache/edgemm/realsets/digits-v2-100-s0/manifest.csv
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # edgemm from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("data")
    a = p.parse_args()

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from real_suite import arrays, logistic_baseline

    import edgemm.export.onnx as onnx_export
    from edgemm.data import open_dataset
    from edgemm.export import export
    from edgemm.export.source import load_source
    from edgemm.runtime import evaluate_session, load

    def calibrate_with(activations):
        def quantize(pre, out, feeds, exclude):
            quantize_static(str(pre), str(out), onnx_export.reader(feeds), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=activations, weight_type=QuantType.QInt8,
                            nodes_to_exclude=exclude)
        return quantize

    arr, _, pre = arrays(a.data)
    base = logistic_baseline(arr, pre)
    src = load_source(a.checkpoint)
    test = open_dataset(a.data, src.preprocess, splits=("test",), labels=src.labels).get("test")
    rows = [("logistic regression, hand-made features", base["accuracy"], base["accuracy_image_only"],
             base["accuracy_audio_only"], "")]
    variants = {"ONNX fp32": None, "ONNX int8, int8 activations": QuantType.QInt8,
                "ONNX int8, uint8 activations": QuantType.QUInt8}
    with tempfile.TemporaryDirectory(prefix="edgemm-int8-act-acc-") as tmp:
        for i, (name, act) in enumerate(variants.items()):
            if act is not None:
                onnx_export.quantize_qdq = calibrate_with(act)
            bundle = Path(tmp) / f"{i}.edgemm"
            m = export(a.checkpoint, target="onnx", precision="fp32" if act is None else "int8", out=bundle,
                       log=lambda s: None)
            r = evaluate_session(load(bundle), test, src.labels)
            rows.append((name, r.accuracy, r.accuracy_image_only, r.accuracy_audio_only,
                         f"{m.verification['status']}, top-1 agreement {m.verification['top1_agreement']:.3f}"))
    print(f"\n{a.data} [test, n={len(test)}], {a.checkpoint}\n")
    print("| model | fused | image only | audio only | verification |\n|---|---:|---:|---:|---|")
    for name, fused, image, audio, v in rows:
        print(f"| {name} | {fused:.3f} | {image:.3f} | {audio:.3f} | {v} |")


if __name__ == "__main__":
    main()
