"""Honest evaluation: fused accuracy and accuracy with each modality absent, per class, confusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from edgemm.runtime.evaluate import CONDITIONS, EvalResult, metrics

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
    return metrics(logits, y, labels)


def plot_confusion(result: EvalResult, path: str | Path) -> Path:
    """Writes the fused confusion matrix as a PNG (rows: true label, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result.confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(result.labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), result.labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), result.labels, fontsize=8)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"fused accuracy {result.accuracy:.1%} (n={result.n})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
