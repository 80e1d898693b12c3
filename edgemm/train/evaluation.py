"""Honest evaluation: fused accuracy and accuracy with each modality absent, per class, confusion."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from edgemm.metrics import CONDITIONS, EvalResult, dataset_clips, metrics


@torch.no_grad()
def predict_logits(
    model: nn.Module, dataset, *, batch_size: int = 128, device: str | torch.device = "cpu"
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Logits of every sample under each condition in ``CONDITIONS``, and the targets."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out: dict[str, list[np.ndarray]] = {k: [] for k in CONDITIONS}
    targets = []
    for batch in loader:
        image, audio = batch["image"].to(device), batch["audio"].to(device)
        b = image.shape[0]
        for name, (pi, pa) in CONDITIONS.items():
            mi = torch.full((b,), pi, device=device)
            ma = torch.full((b,), pa, device=device)
            out[name].append(model(image, audio, mi, ma).float().cpu().numpy())
        targets.append(batch["label"].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(targets)


def evaluate(
    model: nn.Module, dataset, labels: list[str], *, batch_size: int = 128, device: str | torch.device = "cpu"
) -> EvalResult:
    """Evaluates a model on a data set with both modalities and with each one absent.

    Raises:
        ValueError: If the data set is empty.
    """
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty split")
    logits, y = predict_logits(model, dataset, batch_size=batch_size, device=device)
    return metrics(logits, y, labels, dataset_clips(dataset))
