"""Deterministic, resumable, rank-aware sampling.

The order of an epoch is a permutation drawn from ``(seed, epoch)`` alone, so it does not depend on how many
times the process was restarted; a resumed epoch skips the batches already done. Under DDP each rank takes a
strided slice of the same permutation (padded by wrapping so every rank sees the same number of batches).
Per-sample augmentation randomness comes from :func:`sample_generator`, a function of
``(seed, epoch, index, view)`` -- independent of worker count and of interruptions.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed), int(epoch), 0x5EED])
    return rng.permutation(n)


def sample_seed(seed: int, epoch: int, index: int, view: int = 0) -> int:
    h = hashlib.blake2b(f"{seed}|{epoch}|{index}|{view}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


def sample_generator(seed: int, epoch: int, index: int, view: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(sample_seed(seed, epoch, index, view))
    return g


class EpochBatches:
    """Batches of dataset positions for one epoch on one rank.

    positions: the pool (e.g. the training indices). ``drop_last`` drops a final short batch (contrastive
    losses need at least 2 samples; BatchNorm needs > 1).
    """

    def __init__(self, positions, batch_size: int, seed: int, epoch: int, *, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        pos = np.asarray(positions, dtype=np.int64)
        order = pos[epoch_permutation(len(pos), seed, epoch)] if shuffle else pos
        if world_size > 1:
            per_rank = int(np.ceil(len(order) / world_size))
            total = per_rank * world_size
            if total > len(order):  # wrap so every rank gets the same number of samples
                order = np.concatenate([order, order[: total - len(order)]])
            order = order[rank::world_size]
        n_full = len(order) // batch_size
        self.batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(n_full)]
        rest = len(order) - n_full * batch_size
        if rest and (not drop_last or n_full == 0) and rest > 1:
            self.batches.append(order[n_full * batch_size:])

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)

    def from_step(self, step: int) -> list[np.ndarray]:
        return self.batches[step:]
