"""Accuracy of a model with both modalities and with each one absent (torch-free).

``metrics`` is shared by ``edgemm eval`` on a checkpoint (PyTorch, ``edgemm.train.evaluation``) and
on a bundle (``edgemm.runtime.evaluate``), so both print the same JSON keys computed the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# Which modalities are live in each evaluated condition: (image_present, audio_present).
CONDITIONS = {"fused": (1.0, 1.0), "image_only": (1.0, 0.0), "audio_only": (0.0, 1.0)}


@dataclass
class EvalResult:
    """Evaluation of one model on one split; ``to_dict`` is what ``edgemm eval --json`` prints."""

    accuracy: float
    accuracy_image_only: float
    accuracy_audio_only: float
    n: int
    per_class: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]
    loss: float
    accuracy_clip: float | None = None  # video folders: the fused answer per clip (mean of its samples' probabilities)
    n_clips: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def branch_warnings(result: EvalResult, where: str) -> list[str]:
    """One message per modality whose accuracy alone is indistinguishable from guessing.

    Guessing is always answering the most frequent class; "indistinguishable" is below that rate
    plus two binomial standard errors on this many samples.

    Args:
        result: An evaluation with each modality absent in turn.
        where: What was evaluated, for the message (e.g. ``"test"``).
    """
    counts = [sum(row) for row in result.confusion]
    n = max(sum(counts), 1)
    chance = max(counts) / n
    limit = chance + 2 * math.sqrt(chance * (1 - chance) / n)
    weak = {name: acc for name, acc in (("image", result.accuracy_image_only), ("audio", result.accuracy_audio_only))
            if acc <= limit}
    out = []
    for name, acc in weak.items():
        other = "audio" if name == "image" else "image"
        tail = "" if other in weak else f"; fused answers come from the {other} alone"
        out.append(f"the {name} branch learned nothing: {where} accuracy {acc:.3f} with only the {name} present, "
                   f"chance is {chance:.3f} (n={n}){tail}")
    return out


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def clip_accuracy(logits: np.ndarray, y: np.ndarray, clips: np.ndarray) -> tuple[float, int]:
    """Accuracy of one answer per clip: the argmax of the mean of its samples' softmax probabilities.

    Args:
        logits: (N, classes) fused logits of every sample.
        y: (N,) targets (all samples of a clip share one).
        clips: (N,) the clip each sample was cut from.

    Returns:
        The clip-level accuracy and the number of clips.
    """
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ids, inverse = np.unique(clips, return_inverse=True)
    mean = np.zeros((len(ids), prob.shape[1]))
    np.add.at(mean, inverse, prob)
    truth = np.zeros(len(ids), np.int64)
    truth[inverse] = y
    return float((mean.argmax(1) == truth).mean()), int(len(ids))


def dataset_clips(dataset) -> np.ndarray | None:
    """The clip of each sample for data sets cut from clips (video folders), else None."""
    fn = getattr(dataset, "clip_ids", None)
    return None if fn is None else np.asarray(fn())


def metrics(logits: dict[str, np.ndarray], y: np.ndarray, labels: Sequence[str],
            clips: np.ndarray | None = None) -> EvalResult:
    """Accuracies, per-class recall, confusion (rows: true, columns: predicted) and loss.

    Args:
        logits: Per condition in ``CONDITIONS``, (N, classes) logits.
        y: (N,) integer targets.
        labels: Class names, index = class id.
        clips: (N,) the clip of each sample, for a clip-level accuracy (video folders).
    """
    if len(y) == 0:
        raise ValueError("cannot evaluate on an empty split")
    acc = {k: float((v.argmax(1) == y).mean()) for k, v in logits.items()}
    pred = logits["fused"].argmax(1)
    k = len(labels)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = {labels[c]: float(confusion[c, c] / confusion[c].sum()) for c in range(k) if confusion[c].sum() > 0}
    clip_acc, n_clips = clip_accuracy(logits["fused"], y, clips) if clips is not None else (None, None)
    return EvalResult(accuracy=acc["fused"], accuracy_image_only=acc["image_only"],
                      accuracy_audio_only=acc["audio_only"], n=int(len(y)), per_class=per_class,
                      confusion=confusion.tolist(), labels=list(labels), loss=cross_entropy(logits["fused"], y),
                      accuracy_clip=clip_acc, n_clips=n_clips)


def plot_confusion(result: EvalResult, path: str | Path) -> Path:
    """Writes the fused confusion matrix as a PNG (rows: true label, columns: predicted)."""
    from edgemm.plotting import pyplot, save

    plt = pyplot()

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
    return save(fig, path, dpi=110)
