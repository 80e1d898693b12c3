"""Teacher outputs computed once and cached on disk, instead of a teacher forward pass every step.

A large teacher (CLIP + CLAP, a big fusion model) costs most of a distillation's time when it runs
on every batch of every epoch. With ``teacher.outputs: cached`` the teacher runs once per training
sample and presence pattern (both modalities, image only, audio only) on the *un-augmented*
inputs; its logits, and its image / audio / fused embeddings when it has ``forward_features``, are
stored under ``~/.cache/edgemm/teacher_outputs/<key>.pt``. The key hashes the teacher's weights,
the data's identity, the number of training samples and the preprocessing, so another teacher, an
edited manifest or other preprocessing computes new outputs.

What stays online: the student still sees augmented inputs, modality dropout (the target is the
teacher's output for the same missing modality) and mixup (the target mixes the two samples'
softened teacher distributions, and their embeddings, by the same weight). What is lost: the
teacher's answer on the augmented pixels and sounds themselves.

Under ``torchrun`` each rank computes every ``world``-th sample and the shards are gathered, so the
cache costs 1 / world of a single process's time; rank 0 writes the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from edgemm.models.temporal import newest_flags
from edgemm.train import distributed
from edgemm.train.checkpoint import atomic_torch_save
from edgemm.train.precision import autocast

# (image_present, audio_present) of each stored pattern; modality dropout never removes both.
PATTERNS = ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0))
FORMAT = 1  # bump when what is stored changes


@dataclass
class TeacherOutputs:
    """The teacher's outputs for every training sample under each presence pattern.

    Attributes:
        logits: (patterns, samples, classes), float32.
        features: Embedding name -> (patterns, samples, width), float16; None for a teacher
            without ``forward_features``.
    """

    logits: torch.Tensor
    features: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.logits.shape[1]

    def lookup(self, index: torch.Tensor, image_present: torch.Tensor, audio_present: torch.Tensor,
               device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """The stored outputs of samples ``index`` under their presence flags.

        Args:
            index: (B,) positions in the training split the outputs were computed on.
            image_present: (B,) 1.0 where the image is present (a window's (B, K): its newest frame's).
            audio_present: (B,) 1.0 where the audio is present.
            device: Where the returned tensors go.
        """
        image = newest_flags(image_present).detach().cpu() > 0.5
        audio = newest_flags(audio_present).detach().cpu() > 0.5
        pattern = torch.where(image & audio, 0, torch.where(image, 1, 2))
        index = index.cpu().long()
        logits = self.logits[pattern, index].to(device)
        if self.features is None:
            return logits, None
        return logits, {k: v[pattern, index].to(device).float() for k, v in self.features.items()}

    def state(self) -> dict[str, torch.Tensor]:
        return {"logits": self.logits, **{f"features.{k}": v for k, v in (self.features or {}).items()}}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "TeacherOutputs":
        features = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("features.")}
        return cls(state["logits"], features or None)


def mix(logits: torch.Tensor, features: dict[str, torch.Tensor] | None, partner_logits: torch.Tensor,
        partner_features: dict[str, torch.Tensor] | None, lam: torch.Tensor, temperature: float
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """Targets of mixup samples: ``lam`` of each sample's and ``1 - lam`` of its partner's.

    The softened distributions (at ``temperature``) are mixed, and returned as logits whose
    softmax at that temperature is the mixture, so ``kd_loss`` at ``temperature`` sees exactly it.
    """
    w = lam.view(-1, 1)
    log_p = torch.logsumexp(torch.stack([torch.log(w) + torch.log_softmax(logits / temperature, 1),
                                         torch.log1p(-w.clamp(max=1 - 1e-6)) + torch.log_softmax(
                                             partner_logits / temperature, 1)]), 0)
    mixed = log_p * temperature
    if features is None or partner_features is None:
        return mixed, None
    return mixed, {k: w * v + (1 - w) * partner_features[k] for k, v in features.items()}


@torch.no_grad()
def compute(teacher: nn.Module, dataset, *, device: torch.device, amp: torch.dtype | None = None,
            batch_size: int = 64, shard: bool = True) -> TeacherOutputs:
    """Runs ``teacher`` over ``dataset`` (in order, no augmentation) under every presence pattern.

    Under a process group each rank computes its share and every rank returns the whole (unless
    ``shard`` is False: then each rank computes all of it, alone).
    """
    rank, world = distributed.current() if shard else (0, 1)
    n = len(dataset)
    mine = Subset(dataset, range(rank, n, world))
    use_features = hasattr(teacher, "forward_features")
    teacher.to(device).eval()
    logits: list[list[torch.Tensor]] = [[] for _ in PATTERNS]
    feats: list[dict[str, list[torch.Tensor]]] = [{} for _ in PATTERNS]
    for batch in DataLoader(mine, batch_size=batch_size, shuffle=False):
        image, audio = batch["image"].to(device), batch["audio"].to(device)
        b = image.shape[0]
        for p, (has_image, has_audio) in enumerate(PATTERNS):
            mi, ma = torch.full((b,), has_image, device=device), torch.full((b,), has_audio, device=device)
            with autocast(amp, device):
                if use_features:
                    f = teacher.forward_features(image, audio, mi, ma)
                    out = teacher.head(f["fused"])
                    for k, v in f.items():
                        feats[p].setdefault(k, []).append(v.float().cpu())
                else:
                    out = teacher(image, audio, mi, ma)
            logits[p].append(out.float().cpu())
    gather = distributed.gather_shards if world > 1 else (lambda x, n: x)
    stacked = torch.stack([gather(torch.cat(x), n) for x in logits])
    features = None
    if use_features:
        features = {k: torch.stack([gather(torch.cat(f[k]), n) for f in feats]).half() for k in feats[0]}
    return TeacherOutputs(stacked, features)


def weights_digest(model: nn.Module) -> str:
    """A hash of a model's class, parameter and buffer names and values."""
    digest = hashlib.sha1(type(model).__qualname__.encode())
    for k, v in model.state_dict().items():
        digest.update(k.encode())
        digest.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(teacher: nn.Module, data_identity: str, n: int, preprocess: dict, amp: torch.dtype | None) -> str:
    """Names the outputs of ``teacher`` on a data set's ``n`` training samples."""
    blob = json.dumps({"format": FORMAT, "teacher": weights_digest(teacher), "data": data_identity, "samples": n,
                       "preprocess": preprocess, "amp": str(amp)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached(teacher: nn.Module, dataset, *, key: str, cache_dir: Path, device: torch.device,
           amp: torch.dtype | None, log: Callable[[str], None]) -> TeacherOutputs:
    """The teacher's outputs on ``dataset``, read from ``cache_dir/<key>.pt`` or computed and written there."""
    path = Path(cache_dir) / f"{key}.pt"
    if path.is_file():
        try:
            outputs = TeacherOutputs.from_state(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as e:  # a cut-short or foreign file: it is only a cache
            damage = f"cannot be read ({type(e).__name__}: {str(e)[:120]})"
        else:
            first = compute(teacher, Subset(dataset, [0]), device=device, amp=amp, shard=False)
            damage = check(outputs, len(dataset), first)
        if damage is None:
            log(f"teacher outputs: reusing {path}")
            return outputs
        log(f"teacher outputs: {path} {damage}: recomputing")
    rank, world = distributed.current()
    log(f"teacher outputs: computing on {len(dataset)} training samples x {len(PATTERNS)} presence patterns"
        + (f" across {world} ranks" if world > 1 else "") + f" into {path}")
    outputs = compute(teacher, dataset, device=device, amp=amp)
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(outputs.state(), path)
    distributed.barrier()
    return outputs


def check(outputs: TeacherOutputs, n: int, first: TeacherOutputs) -> str | None:
    """What is wrong with stored ``outputs`` for ``n`` samples, or None.

    Args:
        outputs: What a cache file held.
        n: The training split's length.
        first: The teacher's outputs on the split's first sample, computed now: the stored ones must
            have its classes and embedding widths and, for that sample, its values.
    """
    expected = {"logits": (first.logits, torch.float32),
                **{f"{k} embeddings": (v, torch.float16) for k, v in (first.features or {}).items()}}
    stored = {"logits": outputs.logits, **{f"{k} embeddings": v for k, v in (outputs.features or {}).items()}}
    if set(stored) != set(expected):
        return f"holds {sorted(stored)}, the teacher gives {sorted(expected)}"
    for name, (fresh, dtype) in expected.items():
        x = stored[name]
        shape = (len(PATTERNS), n, fresh.shape[-1])
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != shape or x.dtype != dtype:
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            return f"holds {name} of {got}, expected {shape} {dtype}"
        if not torch.isfinite(x).all():
            return f"holds non-finite {name}"
        if not torch.allclose(x[:, :1].float(), fresh.float(), rtol=0.05, atol=0.05):
            return f"holds {name} for the first sample that are not the teacher's"
    return None
