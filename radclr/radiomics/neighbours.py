"""Neighbour offsets and shifted views of a ``[B, H, W]`` batch, as PyRadiomics' C matrices walk them in 2-D.

PyRadiomics (``cmatrices.generate_angles``) uses, for distances D, every offset ``(dy, dx)`` whose Chebyshev norm
is in D, keeping one of each ``+-`` pair: for D = {1} the four angles 0°, 45°, 90°, 135° of the GLCM/GLRLM, and,
taken in both directions, the 8-neighbourhood of GLDM/NGTDM. Offsets longer than the region's bounding box never
pair two region pixels, so dropping them (as PyRadiomics does) and keeping them as empty angles is the same.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import torch

__all__ = ["angles_2d", "neighbourhood_2d", "pair_views", "shifted", "line_layout"]


def angles_2d(distances: Iterable[int]) -> list[tuple[int, int]]:
    """Half-set of offsets ``(dy, dx)`` with ``max(|dy|, |dx|)`` in ``distances``, in PyRadiomics' order."""
    ds = sorted({int(d) for d in distances})
    if not ds or ds[0] < 1:
        raise ValueError(f"distances must be positive integers, got {list(distances)}")
    dmax = ds[-1]
    out = []
    for dy in range(dmax, -1, -1):
        for dx in range(dmax, -dmax - 1, -1):
            if (dy > 0 or dx > 0) and max(abs(dy), abs(dx)) in ds:
                out.append((dy, dx))
    return out


def neighbourhood_2d(distances: Iterable[int]) -> list[tuple[int, int]]:
    """All offsets of :func:`angles_2d` in both directions (the 8-neighbourhood for distance 1)."""
    half = angles_2d(distances)
    return half + [(-dy, -dx) for dy, dx in half]


def pair_views(x: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Views ``(x[p], x[p + (dy, dx)])`` over every position p whose neighbour lies inside the last two dims."""
    H, W = x.shape[-2:]
    a = x[..., max(0, -dy) : H - max(0, dy), max(0, -dx) : W - max(0, dx)]
    b = x[..., max(0, dy) : H + min(0, dy), max(0, dx) : W + min(0, dx)]
    return a, b


def shifted(padded: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """View of the neighbour at ``(dy, dx)`` of every pixel, from an array padded by ``pad`` on each side."""
    H, W = padded.shape[-2] - 2 * pad, padded.shape[-1] - 2 * pad
    return padded[..., pad + dy : pad + dy + H, pad + dx : pad + dx + W]


@lru_cache(maxsize=64)
def _diagonal_index(H: int, W: int, anti: bool, device: str) -> torch.Tensor:
    """Flat pixel index of every position along every (anti-)diagonal, ``H*W`` for positions past its end."""
    P = min(H, W)
    L = H + W - 1
    d = torch.arange(L)[:, None]
    t = torch.arange(P)[None, :]
    if not anti:  # direction (1, 1): line d holds pixels with c - r = d - (H - 1)
        r0 = (H - 1 - d).clamp(min=0)
        c0 = (d - (H - 1)).clamp(min=0)
        r, c = r0 + t, c0 + t
    else:  # direction (1, -1): line d holds pixels with r + c = d
        r0 = (d - (W - 1)).clamp(min=0)
        c0 = d - r0
        r, c = r0 + t, c0 - t
    ok = (r < H) & (c >= 0) & (c < W)
    return torch.where(ok, r * W + c, H * W).to(device)


def line_layout(x: torch.Tensor, direction: tuple[int, int], fill: int = 0) -> torch.Tensor:
    """Rearrange ``x [B, H, W]`` into lines along ``direction`` -> ``[B, L, P]``.

    Consecutive elements of a line are neighbours along the direction; positions past a line's end hold
    ``fill``. Directions: ``(0, 1)`` rows, ``(1, 0)`` columns, ``(1, 1)`` diagonals, ``(1, -1)`` anti-diagonals
    (and their opposites, which give the same lines).
    """
    dy, dx = direction
    if (dy, dx) in ((0, 1), (0, -1)):
        return x
    if (dy, dx) in ((1, 0), (-1, 0)):
        return x.transpose(1, 2).contiguous()
    if abs(dy) != 1 or abs(dx) != 1:
        raise ValueError(f"line_layout supports unit directions, got {direction}")
    B, H, W = x.shape
    anti = dy * dx < 0
    index = _diagonal_index(H, W, anti, str(x.device))
    flat = torch.cat([x.reshape(B, H * W), torch.full((B, 1), fill, dtype=x.dtype, device=x.device)], 1)
    return flat[:, index.flatten()].view(B, *index.shape)
