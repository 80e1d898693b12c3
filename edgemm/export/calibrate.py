"""Calibrated scores: a softmax temperature fitted on the validation split, and the threshold below
which an answer is better left out.

A network's softmax is usually over-confident (a 0.99 that is right 90 % of the time). Temperature
scaling (Guo et al., 2017) divides the logits by one number ``T`` fitted to minimise the negative
log-likelihood of held-out samples: the ranking, and so every label and the accuracy, is unchanged;
the scores become closer to how often they are right, which the expected calibration error (ECE)
measures. The fit runs on the exported model through the runtime (what a device will compute), on
the *validation* split — the test split stays unseen, for verification and the card.

``threshold`` is the operating point ``edgemm run --threshold auto`` uses: the top score below which
leaving the answer out (no label) is right more often than giving it, on the same samples.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgemm.export.source import Samples
from edgemm.runtime.session import softmax

ECE_BINS = 15
Run = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def fused_logits(run: Run, samples: Samples, batch: int = 32) -> np.ndarray:
    """``run``'s float64 logits on ``samples`` with both modalities present, in batches."""
    parts = []
    for i in range(0, len(samples), batch):
        img, aud = samples.image[i:i + batch], samples.audio[i:i + batch]
        ones = np.ones(len(img), np.float32)
        parts.append(np.asarray(run(img, aud, ones, ones), np.float64))
    return np.concatenate(parts)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the sample-weighted mean |accuracy - confidence| over ``bins``
    equal-width bins of the top score."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising ``nll`` (searched in log space, 0.05 to 20)."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=(np.log(0.05), np.log(20.0)),
                            method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def best_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The top score below which answers are left out, chosen so that the most decisions are right:
    a right answer given and a wrong one left out both count (0 when every answer is worth giving)."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    order = np.argsort(conf)
    # Leaving out the k least confident answers: right decisions = wrong ones among them + right ones above.
    wrong_below = np.concatenate([[0], np.cumsum(~right[order])])
    right_above = np.concatenate([[0], np.cumsum(right[order][::-1])])[::-1]
    k = int(np.argmax(wrong_below + right_above))
    return 0.0 if k == 0 else float((conf[order][k - 1] + conf[order][k]) / 2 if k < len(conf) else conf[order][-1])


def calibrate(run: Run, samples: Samples, batch: int = 32) -> dict[str, Any]:
    """The manifest's ``calibration``: ``temperature``, ``threshold`` and the figures behind them,
    from the exported model's logits on ``samples`` (both modalities present)."""
    logits, labels = fused_logits(run, samples, batch), samples.label
    t = fit_temperature(logits, labels)
    before, after = softmax(logits), softmax(logits / t)
    return {"method": "temperature scaling (NLL)", "temperature": round(t, 4), "samples": len(labels),
            "data": samples.description, "nll_before": round(nll(logits, labels), 4),
            "nll_after": round(nll(logits, labels, t), 4), "ece_before": round(ece(before, labels), 4),
            "ece_after": round(ece(after, labels), 4), "threshold": round(best_threshold(after, labels), 4),
            "threshold_rule": "most right decisions: a right answer given, a wrong one left out"}
