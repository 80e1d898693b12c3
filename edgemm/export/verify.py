"""Parity of an exported model with PyTorch, measured in the target's own runtime.

fp32: top-1 agreement and max |Δlogit| against the float model; fp16: top-1 agreement; int8:
accuracy against the reference (the fake-quant program for QAT/PTQ checkpoints, the float model
when the target's tool calibrated it). Every condition is measured (both modalities, image only,
audio only); fused decides pass/fail for int8, all three for fp32/fp16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from edgemm.export.formats import Precision
from edgemm.export.source import Samples
from edgemm.metrics import CONDITIONS
from edgemm.vocab import VerifyStatus

Run = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria.

    Attributes:
        max_abs_logit: fp32: largest allowed |exported - PyTorch| logit difference.
        min_top1_agreement: fp32 and fp16: smallest allowed fraction of equal top-1 predictions.
        int8_accuracy_points: int8: largest allowed accuracy drop below the reference, in points.
    """

    max_abs_logit: float = 1e-4
    min_top1_agreement: float = 1.0
    min_top1_agreement_fp16: float = 0.99
    int8_accuracy_points: float = 1.0


def _logits(run: Run, samples: Samples, batch: int = 32) -> dict[str, np.ndarray]:
    out = {}
    for cond, (pi, pa) in CONDITIONS.items():
        parts = []
        for i in range(0, len(samples), batch):
            img, aud = samples.image[i:i + batch], samples.audio[i:i + batch]
            b = len(img)
            parts.append(np.asarray(run(img, aud, np.full(b, pi, np.float32), np.full(b, pa, np.float32)), np.float32))
        out[cond] = np.concatenate(parts)
    return out


def verify(exported: Run, reference: Run, samples: Samples, precision: Precision, *, reference_name: str,
           labels: list[str], tol: Tolerance = Tolerance()) -> dict[str, Any]:
    """Compares ``exported`` with ``reference`` on ``samples``; returns the manifest's ``verification``."""
    got, want = _logits(exported, samples), _logits(reference, samples)
    y = samples.label
    conditions, problems = {}, []
    for cond in CONDITIONS:
        g, w = got[cond], want[cond]
        diff = np.abs(g - w)
        agree = g.argmax(1) == w.argmax(1)
        c = {"top1_agreement": float(agree.mean()), "max_abs_logit_diff": float(diff.max()),
             "accuracy": float((g.argmax(1) == y).mean()), "reference_accuracy": float((w.argmax(1) == y).mean())}
        conditions[cond] = c
        if precision is Precision.FP32:
            bad = np.flatnonzero(diff.max(1) > tol.max_abs_logit)
            if len(bad):
                i = int(bad[0])
                j = int(diff[i].argmax())
                problems.append(f"output 'logits' diverges first at sample {i} ({cond}), class {labels[j]!r}: "
                                f"|Δ| {diff[i, j]:.3g} > {tol.max_abs_logit:g}")
            if c["top1_agreement"] < tol.min_top1_agreement:
                problems.append(f"{cond}: top-1 agreement {c['top1_agreement']:.4f} < {tol.min_top1_agreement}")
        elif precision is Precision.FP16:
            if c["top1_agreement"] < tol.min_top1_agreement_fp16:
                i = int(np.flatnonzero(~agree)[0])
                problems.append(f"output 'logits' top-1 differs first at sample {i} ({cond}): "
                                f"{labels[int(g[i].argmax())]!r} vs {labels[int(w[i].argmax())]!r}; "
                                f"agreement {c['top1_agreement']:.4f} < {tol.min_top1_agreement_fp16}")
        elif cond == "fused":
            # One-sided: an int8 model that happens to score higher on these samples is not a failure
            # (on 160 samples two answers are 1.25 pts).
            drop = (int((w.argmax(1) == y).sum()) - int((g.argmax(1) == y).sum())) * 100 / len(y)
            if drop > tol.int8_accuracy_points + 1e-9:
                first = np.flatnonzero(~agree)
                problems.append(f"fused accuracy {c['accuracy']:.4f} vs reference {c['reference_accuracy']:.4f} "
                                f"({drop:.2f} pts lower > {tol.int8_accuracy_points})"
                                + (f"; output 'logits' top-1 differs first at sample {int(first[0])}" if first.size else ""))
    fused = conditions["fused"]
    predicted = got["fused"].argmax(1)
    per_class = {name: {"n": int((y == k).sum()), "accuracy": float((predicted[y == k] == k).mean())}
                 for k, name in enumerate(labels) if (y == k).any()}
    return {
        "status": (VerifyStatus.FAILED if problems else VerifyStatus.PASSED).value,
        "message": "; ".join(problems) if problems else "within tolerance",
        "reference": reference_name,
        "samples": len(samples),
        "data": samples.description,
        "top1_agreement": min(c["top1_agreement"] for c in conditions.values()),
        "max_abs_logit_diff": max(c["max_abs_logit_diff"] for c in conditions.values()),
        "accuracy": fused["accuracy"],
        "reference_accuracy": fused["reference_accuracy"],
        "conditions": conditions,
        "per_class": per_class,  # the exported model's fused accuracy on each class's samples
        "tolerance": asdict(tol),
    }
