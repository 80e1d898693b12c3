"""Evaluate a loaded bundle on a data set through the torch-free runtime (metrics: ``edgemm.metrics``)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgemm.metrics import CONDITIONS, EvalResult, dataset_clips, metrics

RunFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def batches(dataset, batch_size: int, limit: int | None = None):
    """Stacks a map-style data set of dicts into numpy batches (no torch DataLoader)."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, n))]
        yield {k: np.stack([np.asarray(it[k]) for it in items]) for k in ("image", "audio", "label")}


def predict_logits(run: RunFn, dataset, *, batch_size: int = 64, limit: int | None = None
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Logits under each condition of ``CONDITIONS`` from any ``run(image, audio, ip, ap)``, and targets."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in CONDITIONS}
    targets = []
    for batch in batches(dataset, batch_size, limit):
        b = len(batch["label"])
        for name, (pi, pa) in CONDITIONS.items():
            flags = np.full(b, pi, np.float32), np.full(b, pa, np.float32)
            out[name].append(np.asarray(run(batch["image"], batch["audio"], *flags), np.float32))
        targets.append(batch["label"].astype(np.int64))
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(targets)


def evaluate_session(session, dataset, labels: Sequence[str], *, batch_size: int = 64) -> EvalResult:
    """Evaluates a loaded bundle (``edgemm.runtime.Session``) on a data set of preprocessed samples."""
    logits, y = predict_logits(session.run, dataset, batch_size=batch_size)
    return metrics(logits, y, labels, dataset_clips(dataset))
