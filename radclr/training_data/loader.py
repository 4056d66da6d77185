"""One DataLoader per training stage, its workers kept for every pass: training epochs, precise BN, validation.

A stage's batches change every epoch (:class:`~radclr.training_data.sampling.EpochBatches`), but its worker
processes need not: :class:`StageLoader` builds one ``DataLoader`` whose batch sampler replays a *plan* set before
each pass, and whose samples are requests ``(view, index, epoch)`` answered by ``views[view].sample(index, epoch)``.
The epoch travels with each request, so persistent workers (which hold a copy of the views made when they
started) draw the same ``(seed, epoch, index)`` augmentations as the main process would -- the sample order and
every augmentation stay independent of the worker count, and a resumed epoch replays the rest of its plan.

Workers (``trainer.num_workers``): ``auto`` = 0 on the CPU (augmentation would compete with the step for the same
cores) and, on CUDA, the process's CPU cores minus 2, shared among the GPUs of the node under torchrun
(``LOCAL_WORLD_SIZE``), with persistent workers, ``PREFETCH`` batches per worker in flight and pinned memory.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Mapping

import numpy as np
import torch

from radclr.errors import ConfigError
from radclr.training_data.view import TrainingView, collate

__all__ = ["PREFETCH", "PlannedBatches", "StageLoader", "resolve_num_workers"]

#: batches each worker prepares ahead (DataLoader ``prefetch_factor``)
PREFETCH = 4


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_num_workers(setting, device: torch.device) -> int:
    """Loader worker processes for ``trainer.num_workers`` (a count, or ``auto``: see the module docstring)."""
    if setting in (None, "auto"):
        if torch.device(device).type != "cuda":
            return 0
        per_node = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
        return max(1, (_cores() - 2) // per_node)
    try:
        n = int(setting)
    except (TypeError, ValueError):
        n = -1
    if n < 0 or isinstance(setting, bool):
        raise ConfigError(f"trainer.num_workers must be auto or a count >= 0, got {setting!r}")
    return n


class PlannedBatches:
    """Batch sampler replaying the plan set last (lists of sample requests), as often as it is iterated."""

    def __init__(self):
        self.plan: list[list[tuple]] = []

    def set_plan(self, plan: list[list[tuple]]) -> None:
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[list[tuple]]:
        return iter(list(self.plan))


class _Requests(torch.utils.data.Dataset):
    """``dataset[(view, index, epoch)] = views[view].sample(index, epoch)``."""

    def __init__(self, views: Mapping[str, TrainingView]):
        self.views = dict(views)

    def __len__(self) -> int:
        return max((len(v) for v in self.views.values()), default=0)

    def __getitem__(self, request: tuple) -> dict:
        name, index, epoch = request
        return self.views[name].sample(index, epoch)


class StageLoader:
    """One DataLoader over named views (see module docstring). ``passes(view, batches, epoch)`` -> an iterator
    of collated batches, on the CPU (pinned on CUDA)."""

    def __init__(self, views: Mapping[str, TrainingView], *, num_workers: int, device: torch.device, seed: int = 0):
        self.batches = PlannedBatches()
        self.num_workers = int(num_workers)
        extra = {"persistent_workers": True, "prefetch_factor": PREFETCH} if self.num_workers > 0 else {}
        # an explicit generator: a DataLoader iterator otherwise draws its base seed from the global RNG, and a
        # resumed epoch (one more iterator) would shift every later random draw (e.g. the next stage's init)
        self.loader = torch.utils.data.DataLoader(
            _Requests(views), batch_sampler=self.batches, collate_fn=collate, num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(int(seed) * 100_003),
            pin_memory=torch.device(device).type == "cuda", **extra)

    def passes(self, view: str, batches: Iterable[np.ndarray], epoch: int) -> Iterator[dict]:
        """Collated batches of ``batches`` (lists of dataset rows) from ``view`` as drawn at ``epoch``."""
        self.batches.set_plan([[(view, int(i), int(epoch)) for i in b] for b in batches])
        return iter(self.loader)

    def close(self) -> None:
        """Stop the persistent workers (the loader is not used afterwards)."""
        it = getattr(self.loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.loader._iterator = None
