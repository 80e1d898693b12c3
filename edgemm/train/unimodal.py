"""Auxiliary per-modality classifiers: every branch learns the classes on its own.

Trained only through the fused output, a fusion model learns first from whichever modality
lowers the loss fastest and the other branch can stay at chance for the whole run ("modality
competition", Huang et al. 2022; measured on a real small set: the image branch of ``av_student``
answered one class for all of its training, benchmarks/HISTORY.md). A linear classifier on each
encoder's output, with its own cross-entropy, gives each branch a gradient of its own. The heads
live beside the model (like distillation's projections): they are not part of it, its checkpoint,
or its export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgemm.models.temporal import newest_flags
from edgemm.train.losses import cross_entropy
from edgemm.vocab import UNLABELLED


def has_branches(model: nn.Module) -> bool:
    """Whether ``model`` has the ``image_encoder`` / ``audio_encoder`` and ``example_inputs`` these heads need."""
    return all(isinstance(getattr(model, n, None), nn.Module) for n in ("image_encoder", "audio_encoder")) and hasattr(
        model, "example_inputs")


def _encoder_widths(model: nn.Module) -> dict[str, int]:
    """Output widths of the two encoders, measured (pruning may have changed them)."""
    widths: dict[str, int] = {}
    hooks = [getattr(model, f"{n}_encoder").register_forward_hook(
        lambda _m, _i, out, n=n: widths.__setitem__(n, out.shape[1])) for n in ("image", "audio")]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*model.example_inputs(2))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return widths


def _distil_unlabelled(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, present: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """T² · KL(teacher ‖ head) averaged over the unlabelled samples whose modality was present."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1), log_target=True,
                  reduction="none").sum(1) * (t * t)
    w = (y == UNLABELLED).to(kl.dtype) * present.reshape(-1).to(kl.dtype)
    return (kl * w).sum() / w.sum().clamp(min=1.0)


class UnimodalHeads(nn.Module):
    """A linear classifier on each encoder's output, fed by forward hooks on the encoders.

    Use ``loss`` after each forward of the model; ``remove`` detaches the hooks.

    Args:
        model: An ``AVModel`` (anything ``has_branches`` accepts), possibly pruned.
        num_classes: Output classes.
    """

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__()
        widths = _encoder_widths(model)
        self.image = nn.Linear(widths["image"], num_classes)
        self.audio = nn.Linear(widths["audio"], num_classes)
        self._seen: dict[str, torch.Tensor] = {}
        self._hooks = [
            model.image_encoder.register_forward_hook(self._keep("image")),
            model.audio_encoder.register_forward_hook(self._keep("audio")),
        ]

    def _keep(self, name: str):
        def hook(_module, _inputs, output):
            if torch.is_grad_enabled():  # training forwards only; evaluation keeps nothing
                self._seen[name] = output

        return hook

    def loss(self, y: torch.Tensor, image_present: torch.Tensor, audio_present: torch.Tensor,
             label_smoothing: float = 0.0, mix: tuple[torch.Tensor, float] | None = None,
             teacher_logits: torch.Tensor | None = None, temperature: float = 4.0) -> torch.Tensor:
        """Loss of each head on the samples whose modality was present, summed over modalities:
        cross-entropy where the label is known and, given ``teacher_logits``, distillation from the
        teacher's answer where it is not (so each branch learns from unlabelled samples too).

        Args:
            y: Targets (B,).
            image_present: Presence flags (B,) the model was given (a window's (B, K): its newest frame's count).
            audio_present: Likewise for audio.
            label_smoothing: As in the main loss.
            mix: ``(perm, lam)`` of a mixup batch: the targets mix as the inputs did.
            teacher_logits: (B, C) the teacher's logits on the same (mixed) inputs.
            temperature: Softmax temperature of that distillation (the KL term is scaled by T²).
        """
        total = y.new_zeros((), dtype=torch.float32)
        for name, head, present in (("image", self.image, image_present), ("audio", self.audio, audio_present)):
            z = self._seen.pop(name)
            if len(z) != len(y):  # a temporal model's encoders saw K frames per sample: the newest answers
                z = z.reshape(len(y), -1, z.shape[-1])[:, -1]
            logits = head(z.float())
            present = newest_flags(present)  # a temporal model's window: its newest frame's
            total = total + cross_entropy(logits, y, label_smoothing=label_smoothing, mix=mix, weight=present)
            if teacher_logits is not None:
                total = total + _distil_unlabelled(logits, teacher_logits, y, present, temperature)
        return total

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._seen.clear()
