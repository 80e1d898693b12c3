"""Does the temperature `edgemm export` fits on the validation split calibrate scores on unseen data?

For each bundle: the temperature is fitted on its data's *validation* split exactly as export
fits it (`edgemm.export.calibrate.calibrate`, the bundle run by the torch-free runtime), then the
expected calibration error (15 bins) and negative log-likelihood are measured on the *test* split,
before and after, beside the same figures on validation. Accuracy cannot change (T > 0 keeps every
ranking); the baseline is the uncalibrated softmax of the same run.

    python benchmarks/calibration.py runs/real_suite_v3/*/compress-*/bundles/av_student-onnx-int8.edgemm \
        --json benchmarks/results/calibration_epyc.json

Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks_common import cpu_name  # noqa: E402

from edgemm.export.calibrate import calibrate, ece, fused_logits, nll  # noqa: E402
from edgemm.export.source import load_samples  # noqa: E402
from edgemm.runtime import load  # noqa: E402
from edgemm.runtime.session import softmax  # noqa: E402


def measure(bundle: Path) -> dict:
    session = load(bundle)
    data = session.manifest.source["data"]
    val = load_samples(data, session.preprocess, session.labels, ("val",), 100_000)
    test = load_samples(data, session.preprocess, session.labels, ("test",), 100_000)
    cal = calibrate(session.run, val)
    t, z, y = cal["temperature"], fused_logits(session.run, test), test.label
    return {"bundle": str(bundle), "data": data, "n_val": len(val), "n_test": len(test), "temperature": t,
            "val": {k: cal[k] for k in ("ece_before", "ece_after", "nll_before", "nll_after")},
            "test": {"ece_before": ece(softmax(z), y), "ece_after": ece(softmax(z / t), y),
                     "nll_before": nll(z, y), "nll_after": nll(z, y, t),
                     "accuracy": float((z.argmax(1) == y).mean())},
            "threshold": cal["threshold"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", type=Path, nargs="+")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/calibration.json"))
    a = p.parse_args()
    rows = [measure(b) for b in a.bundles]
    print("\n| bundle | n val / test | T | ECE val before → after | ECE test before → after | NLL test before → after "
          "| test accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        v, te = r["val"], r["test"]
        print(f"| {r['data'].split('/')[-2]} | {r['n_val']} / {r['n_test']} | {r['temperature']:.3g} | "
              f"{v['ece_before']:.3f} → {v['ece_after']:.3f} | {te['ece_before']:.3f} → {te['ece_after']:.3f} | "
              f"{te['nll_before']:.3f} → {te['nll_after']:.3f} | {te['accuracy']:.3f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "cores": os.cpu_count(),
                                           "date": time.strftime("%Y-%m-%d")}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
