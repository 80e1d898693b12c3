"""Training configuration."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from edgemm.config import check_keys, check_types, parse_enum
from edgemm.train.policies import DEFAULT_POLICY, parse_policy
from edgemm.vocab import Arithmetic


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of ``edgemm train``.

    Attributes:
        epochs: Epochs of the schedule on a large set (early stopping may end sooner).
        min_steps: The schedule runs at least this many optimiser steps: a small set gets more
            epochs, so that 700 samples train as long as 3000 do (0: exactly ``epochs``).
        batch_size: Samples per step per process.
        lr: Peak AdamW learning rate (after warm-up, then cosine decay to zero).
        weight_decay: AdamW weight decay (not applied to norms, biases and embeddings).
        warmup: Linear warm-up, as a fraction of the schedule's steps.
        label_smoothing: Cross-entropy label smoothing.
        modality_dropout: Probability that a training sample loses one modality (image or audio).
        window_mix: Probability that a temporal model's training window takes its older frames from
            another sample (``edgemm.train.augment.window_mix``): it learns to let go when an event
            ends (measured in benchmarks/README.md, "The temporal student on events"); single-frame
            models ignore it.
        unimodal_loss: Weight of the auxiliary per-modality classifiers' loss
            (``edgemm.train.unimodal``), which keeps each branch learning; 0 disables.
        augment: Augmentation policy (``edgemm.train.augment.AugmentPolicy``): ``camera``,
            ``natural`` (adds mirror images) or ``none``.
        ema: Validate, keep and save an exponential moving average of the weights (its time
            constant a tenth of the schedule): validation stops swinging from epoch to epoch.
        patience: Epochs without a better validation accuracy before stopping, counted only after
            half of the schedule has run; 0 disables.
        seed: Seed of shuffling, augmentation and initialisation.
        max_steps: Stop after this many optimiser steps in total (for smoke tests).
        num_workers: DataLoader worker processes.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda[:N]``.
        threads: torch intra-op threads on CPU (None leaves torch's default).
        precision: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the device computes it
            natively, see ``edgemm.train.precision``). Training steps and the per-epoch validation
            run in it; the test evaluation of the best checkpoint is always float32.
        labels_fraction: Train on this fraction of the training split's labels (per class, whole
            clips), as if the rest were unlabelled; training skips unlabelled samples.
    """

    epochs: int = 30
    min_steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    label_smoothing: float = 0.1
    modality_dropout: float = 0.3
    window_mix: float = 0.5
    unimodal_loss: float = 1.0
    augment: str = DEFAULT_POLICY.value
    ema: bool = True
    patience: int = 8
    seed: int = 0
    max_steps: int | None = None
    num_workers: int = 0
    device: str = "auto"
    threads: int | None = None
    precision: str = "fp32"
    labels_fraction: float = 1.0

    def __post_init__(self) -> None:
        check_types(self, "TrainConfig")
        object.__setattr__(self, "augment", parse_policy(self.augment).value)
        object.__setattr__(self, "precision", parse_enum(Arithmetic, self.precision, "TrainConfig.precision").value)
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "min_steps": isinstance(self.min_steps, int) and self.min_steps >= 0,
            "warmup": 0 <= self.warmup < 1,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "modality_dropout": 0 <= self.modality_dropout <= 1,
            "window_mix": 0 <= self.window_mix <= 1,
            "unimodal_loss": self.unimodal_loss >= 0,
            "patience": self.patience >= 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "num_workers": self.num_workers >= 0,
            "threads": self.threads is None or self.threads >= 1,
            "labels_fraction": 0 < self.labels_fraction <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name}: invalid value {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        check_keys(cls, data, "train config")
        return cls(**data)


def schedule_steps(epochs: int, steps_per_epoch: int, min_steps: int) -> tuple[int, int]:
    """The schedule's optimiser steps and the epochs that run them: ``epochs`` of the data, or more
    epochs when that is fewer than ``min_steps`` steps (small data sets)."""
    total = max(epochs * steps_per_epoch, min_steps)
    return total, math.ceil(total / steps_per_epoch)
