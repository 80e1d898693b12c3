"""Cross-entropy that skips samples without a label (``edgemm.vocab.UNLABELLED``), with mixup."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgemm.vocab import UNLABELLED


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, *, label_smoothing: float = 0.0,
                  mix: tuple[torch.Tensor, float] | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the labelled samples (0, still in the graph, when there are none).

    Args:
        logits: (B, C).
        y: (B,) targets; ``UNLABELLED`` samples add nothing.
        label_smoothing: As in ``torch.nn.functional.cross_entropy``.
        mix: ``(perm, lam)`` of a mixup batch: each sample's target is ``lam`` of its own and
            ``1 - lam`` of ``y[perm]``'s, each part counted only where that label is known.
        weight: (B,) per-sample weights (e.g. whether a modality was present).
    """
    def term(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        known = (t != UNLABELLED).to(logits.dtype)
        ce = F.cross_entropy(logits, t.clamp(min=0), label_smoothing=label_smoothing, reduction="none")
        return ce * known, known

    ce, w = term(y)
    if mix is not None:
        perm, lam = mix
        ce_p, w_p = term(y[perm])
        ce, w = lam * ce + (1 - lam) * ce_p, lam * w + (1 - lam) * w_p
    if weight is not None:
        weight = weight.reshape(-1).to(ce.dtype)
        ce, w = ce * weight, w * weight
    return ce.sum() / w.sum().clamp(min=1.0)
