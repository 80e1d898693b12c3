"""Running under ``torchrun``: the process group, DistributedDataParallel and what keeps replicas equal.

``edgemm train`` and ``edgemm compress`` both run as one process per device under
``torchrun --nproc-per-node N`` (nccl on GPU, gloo on CPU). Every rank trains on its share of each
epoch; only rank 0 writes files. Outside torchrun everything here is the single-process no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from edgemm.train.precision import torch_device


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run.

    Attributes:
        rank: This process's rank (0 when not distributed).
        world: Number of processes.
        device: Where this rank computes.
        owner: Whether this call created the process group (and so tears it down).
    """

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owner: bool = False

    @property
    def main(self) -> bool:
        """Whether this rank writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device_pref: str) -> Ranks:
    """Joins the process group ``torchrun`` describes in the environment, or none outside it.

    Args:
        device_pref: ``auto``, ``cpu`` or ``cuda[:N]``; under torchrun each rank takes the GPU of
            its ``LOCAL_RANK`` unless ``cpu`` is asked for.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(device=torch_device(device_pref))
    use_cuda = torch.cuda.is_available() and not device_pref.startswith("cpu")
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size(), device, owner)


def teardown(ranks: Ranks) -> None:
    """Waits for every rank, then leaves the process group if ``setup`` created it."""
    if ranks.distributed:
        dist.barrier()
        if ranks.owner:
            dist.destroy_process_group()


def current() -> tuple[int, int]:
    """(rank, world size) of the process group in use, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Waits for every rank (nothing to wait for outside a process group)."""
    if current()[1] > 1:
        dist.barrier()


def average_gradients(module: nn.Module) -> None:
    """Averages ``module``'s gradients over the ranks as they are computed.

    For loss-side modules outside the DDP wrapper (the auxiliary heads): they start identical
    (same seed) and stay so, and the gradient norm that clipping sees is the same on every rank,
    so the replicas of the model stay identical too.
    """
    world = current()[1]
    if world <= 1:
        return

    def hook(p: torch.Tensor) -> None:
        dist.all_reduce(p.grad)
        p.grad.div_(world)

    for p in module.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(hook)


def _collective_device() -> torch.device:
    """Where tensors must be for collectives: the rank's GPU under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_buffers(model: nn.Module) -> None:
    """Gives every rank rank 0's buffers (BatchNorm statistics last updated by each rank's own batch)."""
    if current()[1] <= 1:
        return
    for b in model.buffers():
        moved = b.detach().to(_collective_device())
        dist.broadcast(moved, 0)
        b.data.copy_(moved)


def replica_spread(model: nn.Module) -> float:
    """Largest difference of any parameter between the ranks' replicas (0.0 when identical or alone)."""
    if current()[1] <= 1:
        return 0.0
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()]).to(_collective_device())
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return max(float((g - gathered[0]).abs().max()) for g in gathered)


def gather_shards(local: torch.Tensor, total: int) -> torch.Tensor:
    """Reassembles rows computed round-robin (rank r holds rows r, r + world, ...) on every rank.

    Args:
        local: This rank's rows, in order: row ``i`` of the result for ``i % world == rank``.
        total: Number of rows of the whole.
    """
    rank, world = current()
    if world <= 1:
        return local
    per = -(-total // world)  # every rank sends the same number of rows: pad the short ones
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=_collective_device())
    padded[: len(local)] = local
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = torch.zeros((total, *local.shape[1:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        part = part.cpu()
        rows = torch.arange(r, total, world)
        out[rows] = part[: len(rows)]
    return out
