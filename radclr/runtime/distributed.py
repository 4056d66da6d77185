"""torchrun / DDP plumbing: process-group setup, rank info, gathering embeddings with gradients.

``torchrun --nproc_per_node=N -m radclr train CONFIG --out RUN`` sets RANK/WORLD_SIZE/LOCAL_RANK; the training loop
then initialises NCCL (CUDA) or gloo (CPU), wraps the method in DistributedDataParallel, gives each rank a
strided slice of the same epoch permutation, and lets only rank 0 write files.

The process group's timeout (how long a rank waits in a collective, e.g. the barrier while rank 0 prepares the
data) is ``trainer.dist_timeout_minutes`` (default 120; NCCL's own default of 10 minutes is shorter than building
a 112 k-image store in one process). Run ``radclr data prepare CONFIG`` before ``torchrun`` so no rank has to wait
for it at all (docs/operation.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from radclr.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


DEFAULT_TIMEOUT_MINUTES = 120.0


def init_distributed(device: torch.device, timeout_minutes: float | None = None) -> DistInfo:
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK), with a collective timeout of
    ``timeout_minutes`` (default :data:`DEFAULT_TIMEOUT_MINUTES`); a single process does nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if device.type == "cuda":  # bind this process to its GPU before NCCL creates any context
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        minutes = float(timeout_minutes if timeout_minutes is not None else DEFAULT_TIMEOUT_MINUTES)
        if minutes <= 0:
            raise ConfigError(f"trainer.dist_timeout_minutes must be > 0, got {minutes}")
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=minutes))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        g = torch.stack(grads)
        dist.all_reduce(g)  # every rank's loss depends on every rank's embeddings
        return g[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0 (rank order), keeping the gradient path.

    The local rows start at ``rank * B``; the sampler guarantees equal batch sizes on every rank."""
    if world_size() == 1:
        return x
    return torch.cat(_GatherWithGrad.apply(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return x
    out = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


def all_reduce_sums(sums: dict[str, float], device: torch.device) -> dict[str, float]:
    """Sum a dict of floats over ranks whose dicts may hold different keys (missing = 0).

    The union of the keys is agreed first, so every rank issues the same collectives in the same order."""
    if world_size() == 1:
        return dict(sums)
    key_lists: list = [None] * dist.get_world_size()
    dist.all_gather_object(key_lists, sorted(sums))
    keys = sorted(set().union(*key_lists))
    t = torch.tensor([float(sums.get(k, 0.0)) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (one collective; the same answer everywhere)."""
    if world_size() == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
