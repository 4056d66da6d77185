"""Flat-index helpers with a fast CPU path.

torch's CPU ``nonzero`` and ``cumsum`` are several times slower than numpy's on the large, mostly-false byte
masks the radiomics engine builds (measured on 3.2 M-element masks: nonzero 7.5 ms vs 1.9 ms, int32 cumsum
9.7 ms vs 4.5 ms, one thread); on CPU these call numpy on a zero-copy view, elsewhere torch.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["cumsum_int32", "flatnonzero"]


def flatnonzero(flags: torch.Tensor) -> torch.Tensor:
    """``int64`` indices of the true entries of a flat (1-D) bool tensor, increasing."""
    if flags.dim() != 1 or flags.dtype != torch.bool:
        raise ValueError(f"flatnonzero expects a 1-D bool tensor, got {tuple(flags.shape)} {flags.dtype}")
    if flags.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(flags.numpy()))
    return torch.nonzero(flags).squeeze(1)


def cumsum_int32(flags: torch.Tensor) -> torch.Tensor:
    """Inclusive running count (``int32``) of a flat (1-D) bool tensor."""
    if flags.dim() != 1 or flags.dtype != torch.bool:
        raise ValueError(f"cumsum_int32 expects a 1-D bool tensor, got {tuple(flags.shape)} {flags.dtype}")
    if flags.device.type == "cpu":
        return torch.from_numpy(np.cumsum(flags.numpy().view(np.uint8), dtype=np.int32))
    return torch.cumsum(flags, 0, dtype=torch.int32)
