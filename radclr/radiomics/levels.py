"""Gray levels of a :class:`RegionBatch` as small matrix indices, shared by the texture classes.

PyRadiomics builds each texture matrix over the gray levels 1..Ng of one region and then deletes the levels absent
from it. radclr builds the matrices of a whole batch at once, over ``G`` level slots shared by the batch:

* when the largest Ng of the batch is small (the usual case: 8-bit images at binWidth 25 give Ng <= 11), slot
  ``k`` is gray level ``k + 1`` in every region and an absent level is a slot with zero counts -- every PyRadiomics
  formula gives the same value with or without such an empty row/column (the features weight terms by p = 0);
* when Ng is large (wide-range images, small bin widths), the levels present in each region are ranked, so ``G``
  is the largest number of *distinct* levels in one region rather than the largest level.

``values`` keeps the real gray level of every slot: formulas that use ``i`` and ``j`` (contrast, emphasis
features ...) read it from there, never from the slot number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from radclr.radiomics.base import RegionBatch

__all__ = ["GrayLevels", "gray_levels", "index_dtype", "count_by_region", "with_region"]

# beyond this many gray levels the per-region levels are ranked instead of used directly
DIRECT_MAX_LEVELS = 64


@dataclass
class GrayLevels:
    """Level slots of a batch.

    code:   ``[B, H, W]`` slot + 1 inside the mask, 0 outside (uint8 when G < 255, else int16/int32): one tensor
            carries both the level and the mask, so "same level and both inside" is a single comparison.
    values: ``float64 [B, G]`` gray level held by each slot (slots beyond a region's levels hold the next
            integers and have zero counts).
    counts: ``int64 [B, G]`` pixels of each slot inside the mask.
    size:   G.
    direct: True when slot k is gray level k + 1 in every region (then ``code`` is the binned image itself).
    """

    code: torch.Tensor
    values: torch.Tensor
    counts: torch.Tensor
    size: int
    direct: bool = True

    @property
    def present(self) -> torch.Tensor:
        return self.counts > 0


def index_dtype(n: int) -> torch.dtype:
    """Smallest integer dtype that holds ``0..n`` (uint8, int16, int32 or int64)."""
    if n <= 255:
        return torch.uint8
    if n <= 32767:
        return torch.int16
    if n <= 2**31 - 1:
        return torch.int32
    return torch.int64


def with_region(code: torch.Tensor, n_codes: int, blocks: int = 1) -> torch.Tensor:
    """``code + b * n_codes`` for region b (codes 0..n_codes-1), in the smallest integer type that also holds
    ``blocks`` times that range: one tensor whose equal values mean "same region and same code"."""
    B = code.shape[0]
    dtype = index_dtype(blocks * B * n_codes - 1)
    offset = (torch.arange(B, device=code.device, dtype=dtype) * n_codes).view((B,) + (1,) * (code.dim() - 1))
    return code.to(dtype) + offset


def count_by_region(index: torch.Tensor, valid: torch.Tensor | None, n_bins: int) -> torch.Tensor:
    """Histogram ``int64 [B, n_bins]`` of ``index [B, ...]`` (values in 0..n_bins-1) per region, over ``valid``.

    The region offset is added in the smallest integer type that holds ``B * n_bins`` (int16 for the usual
    small matrices), which is what makes one ``bincount`` over the whole batch cheap.
    """
    B = index.shape[0]
    wide = index_dtype(B * n_bins + 1)
    if wide == torch.uint8:
        wide = torch.int16
    offset = (torch.arange(B, device=index.device, dtype=wide) * n_bins).view((B,) + (1,) * (index.dim() - 1))
    if valid is None:
        flat = index.to(wide) + offset
        counts = torch.bincount(flat.flatten(), minlength=B * n_bins)
        return counts[: B * n_bins].view(B, n_bins)
    flat = (index.to(wide) + (offset + 1)) * valid  # 0 collects the pixels outside ``valid``
    counts = torch.bincount(flat.flatten(), minlength=B * n_bins + 1)
    return counts[1 : B * n_bins + 1].view(B, n_bins)


def gray_levels(batch: RegionBatch) -> GrayLevels:
    """The batch's :class:`GrayLevels` (computed once and kept in ``batch.cache``)."""
    if "gray_levels" in batch.cache:
        return batch.cache["gray_levels"]
    B = batch.batch_size
    device = batch.device
    ng = int(batch.n_gray.max()) if B else 1
    ng = max(ng, 1)
    if ng <= DIRECT_MAX_LEVELS:
        G = ng
        values = torch.arange(1, ng + 1, device=device, dtype=torch.float64).expand(B, ng).contiguous()
        code = batch.binned.to(index_dtype(G))  # binned is already level + 1 inside, 0 outside
        lut = batch.cache.get("value_lut")
        if lut is not None:  # integer intensities: count levels from the value histogram, not the pixels
            bins, hist = lut
            counts = torch.zeros(B, G, dtype=torch.int64, device=device)
            counts.scatter_add_(1, (bins - 1).clamp_(0, G - 1), hist)
        else:
            counts = count_by_region(code, None, G + 1)[:, 1:]
    else:
        slot = (batch.binned - 1).clamp_(min=0)
        full = count_by_region(slot, batch.mask, ng)
        present = full > 0
        rank = present.cumsum(1) - 1  # slot of each present level
        G = max(int(present.sum(1).max()), 1)
        code = torch.where(batch.mask, rank.gather(1, slot.flatten(1)).view_as(slot) + 1, 0).to(index_dtype(G))
        values = torch.zeros(B, G + 1, device=device, dtype=torch.float64)
        counts = torch.zeros(B, G + 1, device=device, dtype=torch.int64)
        dest = torch.where(present, rank, G)  # absent levels go to a scratch column
        levels = torch.arange(1, ng + 1, device=device, dtype=torch.float64).expand(B, ng)
        values.scatter_(1, dest, levels)
        counts.scatter_(1, dest, full)
        values, counts = values[:, :G], counts[:, :G]
        # slots past a region's last level: give them distinct placeholder values (their counts are 0)
        n_present = present.sum(1, keepdim=True)
        k = torch.arange(G, device=device)[None, :]
        filler = values.gather(1, (n_present - 1).clamp(min=0)) + (k - n_present + 1).to(torch.float64)
        values = torch.where(k < n_present, values, filler)
    result = GrayLevels(code=code.contiguous(), values=values, counts=counts, size=G, direct=ng <= DIRECT_MAX_LEVELS)
    batch.cache["gray_levels"] = result
    return result
