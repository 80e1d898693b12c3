"""``edgemm train``: AdamW + cosine, label smoothing, augmentation, modality dropout, early stopping,
atomic best/last checkpoints, resume, JSON-lines metrics, and DistributedDataParallel under torchrun
(``edgemm.train.distributed``)."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from edgemm.atomic import atomic_write_text, locks_output
from edgemm.data import open_dataset
from edgemm.data.labels import labelled_only, with_label_fraction
from edgemm.errors import EdgemmError
from edgemm.metrics import branch_warnings
from edgemm.train import distributed
from edgemm.train.augment import Augmenter, modality_dropout, window_mix
from edgemm.train.checkpoint import atomic_torch_save, load_checkpoint, make_checkpoint
from edgemm.train.config import TrainConfig, schedule_steps
from edgemm.train.evaluation import evaluate
from edgemm.train.layout import channels_last
from edgemm.train.precision import autocast, autocast_dtype
from edgemm.train.unimodal import UnimodalHeads, has_branches
from edgemm.vocab import UNLABELLED


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weight matrices and kernels, none on norms, biases and tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(("cls", "type_embed")) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_with_warmup(total: int, warmup: int):
    """A ``LambdaLR`` factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


def weight_average(model: torch.nn.Module, total_steps: int) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics.

    Its time constant is a tenth of the schedule (decay ``1 - 10 / total_steps``, kept in
    [0.9, 0.9999]), so it forgets the random initialisation well before the end of any run length.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    decay = min(0.9999, max(0.9, 1.0 - 10.0 / max(total_steps, 1)))
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _model_preprocess(name: str, kwargs: Mapping[str, Any]):
    from edgemm.models import create_model

    # The model owns its preprocessing (timm's pretrained_cfg idea); build it once to read it.
    return create_model(name, **{**kwargs, "num_classes": kwargs.get("num_classes", 2)}).preprocess


def with_stream_rate(name: str, kwargs: dict[str, Any], data, data_format: str | None) -> dict[str, Any]:
    """A temporal model learning from a video folder counts its stride at the clips' frame rate
    (``PreprocessConfig.frame_rate``), so a camera at another rate sees the same seconds. A user's
    own temporal model, or one given a rate, keeps its preprocessing."""
    from edgemm.data import stream_frame_rate
    from edgemm.models import create_model
    from edgemm.models.temporal import TemporalAVModel

    if "frame_rate" in kwargs:
        return kwargs
    probe = create_model(name, **{**kwargs, "num_classes": kwargs.get("num_classes", 2)})
    if not isinstance(probe, TemporalAVModel) or probe.preprocess.frame_rate is not None:
        return kwargs
    rate = stream_frame_rate(data, data_format)
    return kwargs if rate is None else {**kwargs, "frame_rate": rate}


class TrainingDiverged(EdgemmError, ValueError):
    """The loss became NaN or infinite: the weights are no longer usable (nothing more is saved)."""


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    step: int
    hit_max_steps: bool


def train_epoch(
    module: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor],
    *,
    g: torch.Generator,
    device: torch.device,
    augment: Augmenter | None,
    modality_dropout_p: float,
    window_mix_p: float = 0.0,
    max_steps: int | None = None,
    step: int = 0,
    forward: Callable[..., tuple[torch.Tensor, Any]] | None = None,
    amp_dtype: torch.dtype | None = None,
    after_step: Callable[[], None] | None = None,
) -> EpochStats:
    """One pass over ``batches``: augment, drop modalities, forward, ``loss_fn``, step.

    Args:
        module: The model (or its DDP wrapper); put in train mode here.
        batches: Batches of ``{"image", "audio", "label"}``.
        opt: Optimiser over everything that learns (model and any loss-side parameters).
        sched: Per-step learning-rate schedule.
        loss_fn: ``(logits, labels, extra) -> loss``; ``extra`` is what ``forward`` returns besides logits.
        g: Generator for augmentation and modality dropout.
        device: Where tensors go.
        augment: The augmentation policy's ``Augmenter`` (None: no augmentation).
        modality_dropout_p: Probability that a sample loses one modality.
        window_mix_p: Probability that a temporal model's window takes its older frames from another
            sample (``edgemm.train.augment.window_mix``); no effect on single-frame batches.
        max_steps: Stop when the global step count reaches this.
        step: Global step count before this epoch.
        forward: ``(image, audio, image_present, audio_present, batch) -> (logits, extra)``; default:
            the module's logits (``batch`` is the loader's dict, for anything else it carries).
        amp_dtype: Autocast dtype of forward and loss (``precision.autocast_dtype``); None is float32.
        after_step: Called after every optimiser step (e.g. to update a weight average).

    Raises:
        TrainingDiverged: The loss is NaN or infinite (checked every step).
    """
    module.train()
    forward = forward or (lambda image, audio, mi, ma, batch: (module(image, audio, mi, ma), None))
    seen, labelled, correct, loss_sum = 0, 0, 0, 0.0
    params = [p for group in opt.param_groups for p in group["params"]]
    for batch in batches:
        image, audio, y = batch["image"].to(device), batch["audio"].to(device), batch["label"].to(device)
        if augment is not None:
            image, audio = augment.image(image), augment.audio(audio, g)
        mi, ma = modality_dropout(len(y), modality_dropout_p, g, device)
        image, audio, mi, ma = window_mix(image, audio, mi, ma, window_mix_p, g)
        with autocast(amp_dtype, device):
            logits, extra = forward(image, audio, mi, ma, batch)
            loss = loss_fn(logits.float(), y, extra)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        first = step == 0
        step += 1
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(_diverged(value, step, bool(torch.isfinite(logits).all()), first))
        seen += len(y)
        known = y != UNLABELLED  # accuracy over the samples that have a label
        labelled += int(known.sum())
        correct += int(((logits.argmax(1) == y) & known).sum())
        loss_sum += value * len(y)
        if hasattr(batches, "set_postfix"):
            batches.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / max(labelled, 1):.3f}")
        if max_steps and step >= max_steps:
            return EpochStats(loss_sum / seen, correct / max(labelled, 1), step, True)
    return EpochStats(loss_sum / max(seen, 1), correct / max(labelled, 1), step, False)


def _diverged(loss: float, step: int, finite_logits: bool, first: bool) -> str:
    """Why the loss became ``loss``: the weights this run started from, or training itself."""
    if first and not finite_logits:
        return (f"the model's outputs were already non-finite at step 1, before this run changed any weight "
                f"(loss {loss}): check the model's forward and initial weights; a lower learning rate will not "
                "help; nothing from this epoch was saved")
    return f"the loss became {loss} at step {step}: training diverged (lower the learning rate); nothing from " \
           "this epoch was saved"


def _supervised_loss(cfg: TrainConfig, heads: UnimodalHeads | None):
    """``(logits, labels, (image_present, audio_present)) -> loss``: label-smoothed cross-entropy on the
    fused logits, plus ``cfg.unimodal_loss`` times the per-modality heads' when there are heads."""

    def loss_fn(logits, y, flags):
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if heads is not None:
            loss = loss + cfg.unimodal_loss * heads.loss(y, *flags, label_smoothing=cfg.label_smoothing)
        return loss

    return loss_fn


def _should_stop(cfg: TrainConfig, bad_epochs: int, step: int, total: int) -> bool:
    """Early stopping (only in the second half of the schedule) or the step limit."""
    patience_up = bool(cfg.patience) and bad_epochs >= cfg.patience and step >= total // 2
    return patience_up or bool(cfg.max_steps and step >= cfg.max_steps)


@locks_output("train")
def train(
    model: str = "av_student",
    data: str | Path = "default",
    *,
    out: str | Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
    skip_bad: bool = False,
    data_format: str | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Trains a registered model and writes ``best.pt``, ``last.pt``, ``metrics.jsonl``, ``summary.json``.

    Args:
        model: Registry name.
        data: ``"default"``, a manifest CSV or a video folder.
        out: Output directory.
        config: Hyper-parameters.
        resume: Continue from ``out/last.pt`` (its epoch, optimiser, schedule, best score).
        model_kwargs: Overrides of the model's constructor arguments.
        skip_bad: Skip unusable data entries instead of failing.
        data_format: Force the data format instead of detecting it.
        progress: Show progress bars (None: only on a terminal).

    Returns:
        The summary: best validation accuracy and test metrics of the best checkpoint.

    Raises:
        FileExistsError: If ``out`` already holds a run and ``resume`` is not set.

    Example:
        >>> train("test_gated", "default", out="runs/x", config=TrainConfig(epochs=1))  # doctest: +SKIP
    """
    cfg = config or TrainConfig()
    out = Path(out)
    ranks = distributed.setup(cfg.device)
    rank, world, device, is_main = ranks.rank, ranks.world, ranks.device, ranks.main
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    amp_dtype = autocast_dtype(cfg.precision, device)
    state = _resume_state(out, model, resume)
    kwargs = dict(model_kwargs or {})
    kwargs = with_stream_rate(model, kwargs, data, data_format)
    splits = _train_splits(data, _model_preprocess(model, kwargs), cfg, state["labels"] if state else None,
                           data_format, skip_bad, is_main)
    labels = splits.labels
    run = _TrainRun.build(model, kwargs, splits, cfg, device, rank, world)
    progress_at = run.restore(state)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    common = {"train_config": cfg.to_dict(), "data": splits.source}
    show_bars = is_main and (progress if progress is not None else sys.stderr.isatty())
    t_start = time.perf_counter()
    stopped = "epochs"
    start_epoch, best_val, bad_epochs, step = progress_at
    net, heads, kept = run.net, run.heads, run.kept

    def forward(image, audio, mi, ma, _batch):
        return module(image, audio, mi, ma), (mi, ma)

    loss_fn = _supervised_loss(cfg, heads)
    with channels_last(net, kept if kept is not net else None):
        # DDP is built on the converted model: its gradient buckets take the parameters' layout.
        ddp = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else None
        module = ddp or net
        for epoch in range(start_epoch, run.epochs):
            if _should_stop(cfg, bad_epochs, step, run.total):
                break
            t0 = time.perf_counter()
            try:
                stats = run.epoch(module, epoch, loss_fn, forward, cfg, step=step, ranks=ranks, amp_dtype=amp_dtype,
                                  show_bars=show_bars)
            except TrainingDiverged as e:
                kept_file = f"; the last good checkpoint is {out / 'last.pt'} (epoch {epoch})" if epoch else ""
                raise TrainingDiverged(f"epoch {epoch + 1}: {e}{kept_file}") from None
            step = stats.step
            if stats.hit_max_steps:
                stopped = "max_steps"
            with autocast(amp_dtype, device):  # selection only; the reported test score is float32
                val = evaluate(kept, splits.val, labels, device=device)
            improved = val.accuracy > best_val
            best_val, bad_epochs = (val.accuracy, 0) if improved else (best_val, bad_epochs + 1)
            if is_main:
                if improved:
                    atomic_torch_save(make_checkpoint(kept, labels=labels, epoch=epoch, val_accuracy=val.accuracy,
                                                      **common), out / "best.pt")
                run.save_last(out / "last.pt", labels, epoch=epoch, step=step, best_val=best_val,
                              bad_epochs=bad_epochs, **common)
                _log_epoch(out, _epoch_record(epoch, stats, val, run.sched.get_last_lr()[0], t0), run.epochs)
    if cfg.patience and bad_epochs >= cfg.patience:
        stopped = "early_stopping"

    summary: dict[str, Any] = {"model": model, "stopped": stopped, "best_val_accuracy": best_val,
                               "train_seconds": time.perf_counter() - t_start, "world_size": world,
                               "steps": step, "scheduled_steps": run.total, "epochs": run.epochs}
    if ddp is not None:
        summary["replica_max_abs_diff"] = distributed.replica_spread(net)
    if is_main:
        _test_best(out, splits, labels, device, summary)
    distributed.teardown(ranks)
    return summary


def _train_splits(data, preprocess, cfg: TrainConfig, labels: list[str] | None, data_format: str | None,
                  skip_bad: bool, say: bool):
    """The train / val / test splits, the training split reduced to the labelled samples it keeps
    (``cfg.labels_fraction``); bad entries skipped are reported (``say``) and an empty val split refused."""
    splits = open_dataset(data, preprocess, format=data_format, skip_bad=skip_bad, splits=("train", "val", "test"),
                          labels=labels)
    if splits.skipped and say:
        print(f"skipped {len(splits.skipped)} bad entries (first: {splits.skipped[0]})", file=sys.stderr)
    if len(splits.val) == 0:
        raise ValueError(f"{splits.source}: the val split is empty; early stopping needs one (add rows or clips)")
    # Training from labels skips unlabelled samples (and those --labels-fraction hides).
    splits.train = labelled_only(with_label_fraction(splits.train, cfg.labels_fraction, cfg.seed))
    return splits


def _resume_state(out: Path, model: str, resume: bool) -> dict[str, Any] | None:
    """The ``last.pt`` to continue from, or None for a fresh run.

    Raises:
        FileExistsError: ``out`` holds a run and ``resume`` is not set.
        ValueError: The run in ``out`` trained another model.
    """
    last = out / "last.pt"
    if not last.is_file():
        return None
    if not resume:
        raise FileExistsError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")
    state = load_checkpoint(last)
    if state["model"]["name"] != model:
        raise ValueError(f"{last} is a {state['model']['name']!r} run; cannot resume it as {model!r}")
    return state


@dataclass
class _TrainRun:
    """Everything one training run updates: the model, its weight average and auxiliary heads, the
    optimiser, the schedule and the data order."""

    net: torch.nn.Module
    ema: Any
    heads: UnimodalHeads | None
    opt: torch.optim.Optimizer
    sched: Any
    sampler: DistributedSampler
    loader: DataLoader
    augmenter: Augmenter
    total: int  # scheduled optimiser steps
    epochs: int

    @property
    def kept(self) -> torch.nn.Module:
        """What is validated and saved: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.net

    @classmethod
    def build(cls, model: str, kwargs: dict[str, Any], splits, cfg: TrainConfig, device, rank: int,
              world: int) -> "_TrainRun":
        from edgemm.models import create_model

        torch.manual_seed(cfg.seed)
        net = create_model(model, **{**kwargs, "num_classes": len(splits.labels)}).to(device)
        sampler = DistributedSampler(splits.train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
        loader = DataLoader(splits.train, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                            drop_last=len(splits.train) // world > cfg.batch_size)
        total, epochs = schedule_steps(cfg.epochs, max(1, len(loader)), cfg.min_steps)
        ema = weight_average(net, total) if cfg.ema else None  # before the heads hook into net's encoders
        heads = UnimodalHeads(net, len(splits.labels)).to(device) if cfg.unimodal_loss > 0 and has_branches(net) else None
        if heads is not None:
            distributed.average_gradients(heads)
        groups = param_groups(net, cfg.weight_decay) + (param_groups(heads, cfg.weight_decay) if heads else [])
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(total, int(cfg.warmup * total)))
        pre = net.preprocess
        return cls(net, ema, heads, opt, sched, sampler, loader, Augmenter(cfg.augment, pre.image, pre.audio.sample_rate),
                   total, epochs)

    def restore(self, state: dict[str, Any] | None) -> tuple[int, float, int, int]:
        """Loads a ``last.pt``; returns (first epoch, best validation accuracy, bad epochs, step)."""
        if not state:
            return 0, -1.0, 0, 0
        self.net.load_state_dict(state["state_dict"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.heads is not None:
            self.heads.load_state_dict(state["unimodal_heads"])
        return state["epoch"] + 1, state["best_val"], state["bad_epochs"], state["step"]

    def epoch(self, module: torch.nn.Module, epoch: int, loss_fn, forward, cfg: TrainConfig, *, step: int, ranks,
              amp_dtype: torch.dtype | None, show_bars: bool) -> EpochStats:
        """One epoch of ``train_epoch`` over this run's data order, augmentation and weight average.

        Every random draw of an epoch (order, augmentation, dropout, SpecAugment) derives from
        (seed, epoch, rank), so a resumed run continues exactly as an uninterrupted one would.
        """
        from tqdm.auto import tqdm

        world, rank = ranks.world, ranks.rank
        self.sampler.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * world + rank)
        torch.manual_seed(cfg.seed * 7_919 + epoch * world + rank)
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.epochs}", disable=not show_bars, leave=False)
        ema, net = self.ema, self.net
        return train_epoch(module, bar, self.opt, self.sched, loss_fn, g=g, device=ranks.device,
                           augment=self.augmenter, forward=forward, modality_dropout_p=cfg.modality_dropout,
                           window_mix_p=cfg.window_mix,
                           max_steps=cfg.max_steps, step=step, amp_dtype=amp_dtype,
                           after_step=(lambda: ema.update_parameters(net)) if ema else None)

    def save_last(self, path: Path, labels: list[str], **fields: Any) -> None:
        """Writes ``last.pt``: the raw weights and everything ``restore`` needs."""
        atomic_torch_save(make_checkpoint(self.net, labels=labels, optimizer=self.opt.state_dict(),
                                          scheduler=self.sched.state_dict(),
                                          ema=self.ema.state_dict() if self.ema is not None else None,
                                          unimodal_heads=self.heads.state_dict() if self.heads is not None else None,
                                          **fields), path)


def _epoch_record(epoch: int, stats: EpochStats, val, lr: float, t0: float) -> dict[str, Any]:
    """One line of ``metrics.jsonl``."""
    return {"epoch": epoch, "step": stats.step, "train_loss": stats.loss, "train_accuracy": stats.accuracy,
            "val_accuracy": val.accuracy, "val_accuracy_image_only": val.accuracy_image_only,
            "val_accuracy_audio_only": val.accuracy_audio_only, "val_loss": val.loss,
            "lr": lr, "seconds": time.perf_counter() - t0}


def _log_epoch(out: Path, record: dict[str, Any], epochs: int) -> None:
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"epoch {record['epoch'] + 1}/{epochs}  loss {record['train_loss']:.3f}  val {record['val_accuracy']:.3f} "
          f"(image-only {record['val_accuracy_image_only']:.3f}, audio-only {record['val_accuracy_audio_only']:.3f})  "
          f"{record['seconds']:.1f}s", file=sys.stderr)


def _test_best(out: Path, splits, labels: list[str], device, summary: dict[str, Any]) -> None:
    """Evaluates ``best.pt`` on the test split into ``summary`` and writes ``summary.json``."""
    from edgemm.train.checkpoint import load_model

    best, _ = load_model(out / "best.pt", map_location=str(device))
    if len(splits.test):
        test = evaluate(best, splits.test, labels, device=device)
        summary["test"] = {k: v for k, v in test.to_dict().items() if k not in ("confusion",)}
        summary["warnings"] = branch_warnings(test, "test")
        for w in summary["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
