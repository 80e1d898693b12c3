"""Knowledge distillation: the student learns from the teacher's soft labels and embeddings.

Loss = (1 - alpha) * CE(student, labels) + alpha * T² * KL(teacher_T || student_T)
       + feature_weight * sum over {image, audio, fused} of (1 - cos(proj(student_emb), teacher_emb)).

The teacher sees exactly the augmented inputs and missing-modality flags the student sees, so the
student learns the teacher's behaviour with a muted microphone or a covered camera too.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from edgemm.compress.recipe import DistillConfig
from edgemm.compress.teacher_outputs import TeacherOutputs
from edgemm.compress.teacher_outputs import mix as mix_targets
from edgemm.train import distributed
from edgemm.train.augment import Augmenter
from edgemm.train.augment import mixup as mix_batch
from edgemm.train.config import schedule_steps
from edgemm.train.evaluation import evaluate
from edgemm.train.layout import channels_last
from edgemm.train.loop import cosine_with_warmup, param_groups, train_epoch
from edgemm.train.losses import cross_entropy
from edgemm.train.precision import autocast
from edgemm.train.unimodal import UnimodalHeads, has_branches

FEATURES = ("image", "audio", "fused")
MAX_VALIDATIONS = 50  # a stage validates after every epoch, or every few when it has more epochs than this


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence between temperature-softened distributions, scaled by T² (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * (t * t)


class FeatureProjections(nn.Module):
    """Learned linear maps from the student's embedding widths to the teacher's."""

    def __init__(self, student: nn.Module, teacher: nn.Module | Mapping[str, int]) -> None:
        """``teacher``: the teacher (probed once for its widths), or its embedding widths by name."""
        super().__init__()
        widths = teacher if isinstance(teacher, Mapping) else _teacher_widths(teacher, None)
        with torch.no_grad():
            s = _eval_features(student, student.example_inputs(2))
        self.proj = nn.ModuleDict({k: nn.Linear(s[k].shape[1], widths[k]) for k in FEATURES})

    def forward(self, s_feats: dict[str, torch.Tensor], t_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum((1 - F.cosine_similarity(self.proj[k](s_feats[k]), t_feats[k], dim=1)).mean() for k in FEATURES)


def _teacher_widths(teacher: nn.Module, cached: TeacherOutputs | None) -> dict[str, int]:
    if cached is not None:
        return {k: v.shape[-1] for k, v in cached.features.items()}
    with torch.no_grad():
        return {k: v.shape[1] for k, v in _eval_features(teacher, teacher.example_inputs(2)).items()}


class _StudentStep(nn.Module):
    """The student's training forward as one module (what DistributedDataParallel wraps):
    ``(embeddings or None, logits)``."""

    def __init__(self, student: nn.Module, use_features: bool) -> None:
        super().__init__()
        self.student, self.use_features = student, use_features

    def forward(self, image, audio, image_present, audio_present):
        if not self.use_features:
            return None, self.student(image, audio, image_present, audio_present)
        features = self.student.forward_features(image, audio, image_present, audio_present)
        return features, self.student.head(features["fused"])


class _Indexed:
    """A dataset whose items also carry their position (to look up cached teacher outputs)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return {**self.dataset[i], "index": i}


def _eval_features(model: nn.Module, ex) -> dict[str, torch.Tensor]:
    was = model.training
    model.eval()
    out = model.forward_features(*ex)
    model.train(was)
    return out


def within_noise(accuracy: float, best: float, n: int) -> bool:
    """Whether ``accuracy`` is at most one binomial standard error below ``best`` on ``n`` samples.

    Validation sets here are small (300 samples: one standard error is ~1.3 pts near 95 %), so the
    epoch with the top validation score is often an earlier, less converged one that was lucky.
    Late epochs of a cosine schedule are the better models on fresh data (measured: distillation
    kept epoch 7 of 12 at 0.920 held-out accuracy; the last epochs scored 0.937-0.940), so ``fit``
    keeps the latest epoch that validation cannot tell apart from the best.
    """
    return accuracy >= best - math.sqrt(best * (1 - best) / max(n, 1))


@dataclass
class FitResult:
    """What a distillation run did: per-epoch validation accuracy and the epoch kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1  # the epoch kept
    best_val: float = -1.0  # its validation accuracy

    @property
    def top_val(self) -> float:
        """The highest validation accuracy of any epoch so far."""
        return max((h["val_accuracy"] for h in self.history), default=-1.0)


def fit(
    student: nn.Module,
    teacher: nn.Module | None,
    splits,
    config: DistillConfig = DistillConfig(),
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    keep_best: bool = True,
    teacher_amp: torch.dtype | None = None,
    teacher_outputs: TeacherOutputs | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Trains ``student`` as ``config`` says, distilling from ``teacher`` (or plain CE if None).

    Under a process group (``torchrun``) the student trains as DistributedDataParallel: each rank
    takes its share of every epoch, gradients (the auxiliary heads' and projections' too) are
    averaged, and every rank validates the same replica, so all keep the same epoch.

    Args:
        student: An ``AVModel`` (possibly pruned), or a PT2E graph module (logit distillation only).
        teacher: The teacher, kept in eval mode and frozen; None trains from labels alone (the
            distillation fields of ``config`` are then unused).
        splits: ``DataSplits``; trains on ``train``, selects on ``val``.
        config: The schedule, losses and augmentation (``edgemm.compress.recipe.DistillConfig``).
        seed: Seed of the data order, augmentation and dropout.
        device: Where to train.
        keep_best: Restore the weights of the latest epoch whose validation accuracy is within one
            standard error of the best (``within_noise``); False keeps the last epoch.
        teacher_amp: Autocast dtype of the teacher's forward passes (``edgemm.train.precision``);
            its outputs are cast back to float32 before they enter the loss.
        teacher_outputs: The teacher's outputs on ``splits.train`` computed beforehand
            (``edgemm.compress.teacher_outputs``): looked up instead of running ``teacher``.
        log: Where to report each validation (default: stderr).

    Returns:
        The history of every validated epoch (each, or every few past ``MAX_VALIDATIONS`` epochs)
        and the epoch kept.
    """
    log = log or (lambda s: print(s, file=sys.stderr))
    device = torch.device(device)
    rank, world = distributed.current()
    student.to(device)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    else:
        teacher_outputs = None
    # The projections and auxiliary heads start from ``seed`` alone, not from whatever the process drew
    # before: a stage resumed in a fresh process (or re-run on its own) trains exactly as it did in the run.
    torch.manual_seed(seed * 7_919 - 1)
    objective = _Objective.build(student, teacher, teacher_outputs, config, len(splits.labels), device, teacher_amp)
    train_set = _Indexed(splits.train) if teacher_outputs is not None else splits.train
    loader, sampler = _loader(train_set, config.batch_size, seed, rank, world)
    opt = torch.optim.AdamW(objective.param_groups(config.weight_decay), lr=config.lr)
    steps, epochs = schedule_steps(config.epochs, max(1, len(loader)), config.min_steps)
    validate_every = -(-epochs // MAX_VALIDATIONS)  # a few labels make 1-step epochs: 1500 validations
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(steps, min(len(loader), steps // 10)))
    pre = splits.train.preprocess
    augmenter = Augmenter(config.augment, pre.image, pre.audio.sample_rate)
    result, best_state = FitResult(), None
    try:
        with channels_last(student, teacher):
            # DDP is built on the converted model: its gradient buckets take the parameters' layout.
            objective.net = DistributedDataParallel(objective.step) if world > 1 else objective.step
            for epoch in range(epochs):
                if sampler is not None:
                    sampler.set_epoch(epoch)
                # Per (seed, epoch, rank): one process draws exactly what it always did.
                g = torch.Generator().manual_seed(seed * 100_003 + epoch * world + rank)
                torch.manual_seed(seed * 7_919 + epoch * world + rank)
                stats = train_epoch(objective.net, loader, opt, sched, objective.loss, g=g, device=device,
                                    augment=augmenter, modality_dropout_p=config.modality_dropout,
                                    window_mix_p=config.window_mix,
                                    forward=objective.forward)
                distributed.broadcast_buffers(student)  # BatchNorm statistics saw each rank's own last batch
                if (epoch + 1) % validate_every and epoch + 1 < epochs:
                    continue
                if _validate(student, splits, device, epoch, epochs, stats.loss, result, log) and keep_best:
                    best_state = copy.deepcopy(student.state_dict())
    finally:
        objective.close()
    if keep_best and best_state is not None:
        student.load_state_dict(best_state)
    return result


def _validate(student: nn.Module, splits, device, epoch: int, epochs: int, loss: float, result: FitResult, log) -> bool:
    """Scores the student on the validation split, records and logs it; whether this epoch is now
    the one to keep (``within_noise`` of the best so far)."""
    val = evaluate(student, splits.val, splits.labels, device=device)
    result.history.append({"epoch": epoch, "loss": loss, "val_accuracy": val.accuracy,
                           "val_accuracy_image_only": val.accuracy_image_only,
                           "val_accuracy_audio_only": val.accuracy_audio_only})
    log(f"  epoch {epoch + 1}/{epochs}  loss {loss:.3f}  val {val.accuracy:.3f} "
        f"(image-only {val.accuracy_image_only:.3f}, audio-only {val.accuracy_audio_only:.3f})")
    if not within_noise(val.accuracy, result.top_val, val.n):
        return False
    result.best_val, result.best_epoch = val.accuracy, epoch
    return True


@dataclass
class _Objective:
    """What one training step computes: the student's forward (through ``net``: the student step,
    or DDP around it), the teacher's targets for the same augmented batch, and the loss."""

    config: DistillConfig
    step: _StudentStep
    teacher: nn.Module | None
    teacher_outputs: TeacherOutputs | None
    projections: FeatureProjections | None  # embedding distillation (both models have embeddings)
    heads: UnimodalHeads | None  # an auxiliary classifier per modality
    device: torch.device
    teacher_amp: torch.dtype | None
    net: nn.Module | None = None

    @classmethod
    def build(cls, student: nn.Module, teacher: nn.Module | None, teacher_outputs: TeacherOutputs | None,
              config: DistillConfig, num_classes: int, device: torch.device, teacher_amp) -> "_Objective":
        # Embedding distillation needs both models' embeddings (``forward_features``, as ``AVModel``
        # has); any other model under the one contract distils from its logits alone.
        teacher_has_features = hasattr(teacher, "forward_features") if teacher_outputs is None \
            else teacher_outputs.features is not None
        use_features = (teacher is not None and config.feature_weight > 0 and hasattr(student, "forward_features")
                        and teacher_has_features)
        projections = FeatureProjections(student, _teacher_widths(teacher, teacher_outputs)).to(device) \
            if use_features else None
        heads = UnimodalHeads(student, num_classes).to(device) \
            if config.unimodal_loss > 0 and has_branches(student) else None
        for loss_side in (projections, heads):
            if loss_side is not None:
                distributed.average_gradients(loss_side)
        step = _StudentStep(student, use_features)
        return cls(config, step, teacher, teacher_outputs, projections, heads, device, teacher_amp, net=step)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """The student's parameter groups, then the projections' (no decay) and the heads'."""
        groups = param_groups(self.step.student, weight_decay)
        if self.projections is not None:
            groups.append({"params": list(self.projections.parameters()), "weight_decay": 0.0})
        if self.heads is not None:
            groups += param_groups(self.heads, weight_decay)
        return groups

    def targets(self, image, audio, mi, ma, batch, mixed):
        """The teacher's logits and embeddings for this batch (float32)."""
        config, device, use_features = self.config, self.device, self.step.use_features
        if self.teacher_outputs is not None:
            tl, tf = self.teacher_outputs.lookup(batch["index"], mi, ma, device)
            if mixed is not None:
                perm, lam = mixed
                pl, pf = self.teacher_outputs.lookup(batch["index"][perm.cpu()], mi, ma, device)
                tl, tf = mix_targets(tl, tf, pl, pf, lam, config.temperature)
            return tl, tf if use_features else None
        with torch.no_grad(), autocast(self.teacher_amp, device):
            if use_features:
                tf = self.teacher.forward_features(image, audio, mi, ma)
                tl = self.teacher.head(tf["fused"])
            else:
                tf, tl = None, self.teacher(image, audio, mi, ma)
        return tl.float(), None if tf is None else {k: v.float() for k, v in tf.items()}

    def forward(self, image, audio, mi, ma, batch):
        mixed = None
        if self.config.mixup > 0:
            image, audio, perm, lam = mix_batch(image, audio, self.config.mixup)
            mixed = (perm, lam)
        sf, logits = self.net(image, audio, mi, ma)
        if self.teacher is None:
            return logits, (mixed, None, (mi, ma))
        tl, tf = self.targets(image, audio, mi, ma, batch, mixed)
        return logits, (mixed, (sf, tf, tl), (mi, ma))

    def loss(self, logits, y, extra):
        config, heads = self.config, self.heads
        mixed, taught, flags = extra
        # Each branch's auxiliary head learns from the labels and, where there are none, from the teacher.
        branches = 0.0 if heads is None else config.unimodal_loss * heads.loss(
            y, *flags, label_smoothing=config.label_smoothing, mix=mixed,
            teacher_logits=None if taught is None else taught[2], temperature=config.temperature)
        # Labelled samples only; the labels mix as the inputs did. Unlabelled ones learn from the teacher.
        ce = cross_entropy(logits, y, label_smoothing=config.label_smoothing, mix=mixed)
        if taught is None:
            return ce + branches
        sf, tf, tl = taught
        loss = (1 - config.alpha) * ce + config.alpha * kd_loss(logits, tl, config.temperature) + branches
        if self.projections is not None:
            loss = loss + config.feature_weight * self.projections(sf, tf)
        return loss

    def close(self) -> None:
        """Detaches the auxiliary heads' hooks from the student."""
        if self.heads is not None:
            self.heads.remove()


def _loader(dataset, batch_size: int, seed: int, rank: int, world: int
            ) -> tuple[DataLoader, DistributedSampler | None]:
    """Shuffled batches (a partial last batch dropped unless it is the only one); this rank's share under DDP."""
    if world <= 1:
        g = torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g,
                          drop_last=len(dataset) > batch_size), None
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      drop_last=len(dataset) // world > batch_size), sampler
