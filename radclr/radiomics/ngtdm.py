r"""Neighbouring Gray Tone Difference Matrix features (PyRadiomics ``ngtdm``, 5 features).

For every region pixel of gray level i, :math:`\bar{A}` is the mean gray level of its neighbours inside the region
(the ``distances`` neighbourhood: 8 pixels in 2-D). :math:`n_i` counts the region pixels of level i (a pixel
without any neighbour in the region still counts, with difference 0, as in PyRadiomics' C code),
:math:`s_i = \sum |i - \bar{A}|`, :math:`p_i = n_i / N_{v,p}`, :math:`N_{g,p}` the number of levels with
:math:`p_i > 0`. Radiomics view of seed 000 §2 (SPEC §2).

Neighbour sums and counts of the whole batch are sums of shifted arrays; ``s_i`` is one weighted ``bincount``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from radclr.radiomics.aggregate import divide_or
from radclr.radiomics.base import feature
from radclr.radiomics.chunked import ChunkedFeatureClass, Group, precomputed
from radclr.radiomics.levels import with_region
from radclr.radiomics.neighbours import neighbourhood_2d, shifted

__all__ = ["NGTDM", "tone_differences"]


def _box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over the ``(2r+1)^2`` square around every pixel (zero padding), as two 1-D running sums."""
    p = F.pad(x, (radius, radius, radius, radius))
    k = 2 * radius + 1
    H, W = x.shape[-2:]
    rows = p[..., :, 0:W].clone()
    for d in range(1, k):
        rows += p[..., :, d : d + W]
    out = rows[..., 0:H, :].clone()
    for d in range(1, k):
        out += rows[..., d : d + H, :]
    return out


def _neighbour_sums(gray: torch.Tensor, inside: torch.Tensor, offsets: list[tuple[int, int]], dtype):
    """Sum of the neighbours' gray levels and number of neighbours inside the region, for every pixel."""
    radius = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    square = len(offsets) == (2 * radius + 1) ** 2 - 1  # distances 1..r: the whole square but the centre
    g = gray.to(dtype)
    m = inside.to(torch.uint8) if radius == 1 else inside.to(torch.int16)
    if square:
        return _box_sum(g, radius) - g, _box_sum(m, radius) - m
    gp = F.pad(g, (radius,) * 4)
    mp = F.pad(m, (radius,) * 4)
    total, count = torch.zeros_like(g), torch.zeros_like(m)
    for dy, dx in offsets:
        total += shifted(gp, radius, dy, dx)
        count += shifted(mp, radius, dy, dx)
    return total, count


def tone_differences(group: Group) -> torch.Tensor:
    """``s_i``: summed absolute differences to the neighbourhood mean, ``float64 [b, G]``.

    PyRadiomics adds :math:`|i - T/c|` per pixel (T the neighbours' sum, c their count); radclr groups pixels by
    (region, level, c) and adds the integers :math:`|i c - T|`, dividing by c once per group -- the same sum
    with fewer rounding steps.
    """
    offsets = neighbourhood_2d(group.settings.glcm_distances)
    n_c = len(offsets) + 1
    counted = precomputed(group.batch, "ngtdm", group.slice)  # the CPU fast path's kernel, when it ran
    if counted is not None:
        sums = counted.to(torch.float64)[:, :, 1:]
        return (sums / torch.arange(1, n_c, dtype=torch.float64)).sum(-1)
    code = group.code
    b, G = len(group), group.size
    gray = code if group.direct else group.batch.binned[group.slice]
    ng = int(group.n_gray.max()) if b else 1
    n_nb = len(offsets)
    wide = torch.int16 if ng * (n_nb + 1) * 2 < 32767 else torch.int32
    inside = code != 0
    total, count = _neighbour_sums(gray, inside, offsets, wide)
    diff = (gray.to(wide) * count - total).abs()  # |i c - T|: an integer
    n_c = n_nb + 1
    key = with_region(code, G + 1, blocks=n_c) * n_c + count  # (region, level slot, c); level 0 = outside
    sums = torch.bincount(key.flatten(), weights=diff.flatten().to(torch.float64), minlength=b * (G + 1) * n_c)
    sums = sums.view(b, G + 1, n_c)[:, 1:, 1:]  # c = 0 (no neighbour): difference 0, as PyRadiomics
    return (sums / torch.arange(1, n_c, dtype=torch.float64, device=code.device)).sum(-1)


class _Coefficients:
    def __init__(self, group: Group):
        n = group.counts.to(torch.float64)  # [b, G]
        self.nvp = n.sum(1)
        self.p = n / torch.where(self.nvp > 0, self.nvp, torch.ones_like(self.nvp))[:, None]
        self.s = tone_differences(group)
        self.i = group.values
        self.ngp = (n > 0).sum(1).to(torch.float64)
        nz = self.p > 0
        self.pair = nz[:, :, None] & nz[:, None, :]  # both p_i and p_j non-zero


class NGTDM(ChunkedFeatureClass):
    """PyRadiomics ``ngtdm`` on a batch (Amadasun & King 1989; definitions as in the PyRadiomics docs)."""

    name = "ngtdm"

    def _elements_per_region(self, levels) -> int:
        return 4 * levels.size**2

    def _coefficients(self, group: Group) -> _Coefficients:
        return _Coefficients(group)

    @feature
    def Coarseness(self) -> torch.Tensor:
        r""":math:`1 / \sum_i p_i s_i` (:math:`10^6` when the sum is 0: a flat region)."""
        c = self.c
        return divide_or(torch.ones_like(c.nvp), (c.p * c.s).sum(1), 1e6)

    @feature
    def Contrast(self) -> torch.Tensor:
        r""":math:`\left(\frac{1}{N_{g,p}(N_{g,p}-1)}\sum_{i,j} p_i p_j (i-j)^2\right)
        \left(\frac{1}{N_{v,p}}\sum_i s_i\right)` (0 when :math:`N_{g,p} = 1`)."""
        c = self.c
        d2 = (c.i[:, :, None] - c.i[:, None, :]) ** 2
        contrast = (c.p[:, :, None] * c.p[:, None, :] * d2).sum((1, 2)) * c.s.sum(1) / c.nvp
        return divide_or(contrast, c.ngp * (c.ngp - 1), 0.0)

    @feature
    def Busyness(self) -> torch.Tensor:
        r""":math:`\frac{\sum_i p_i s_i}{\sum_{i,j} |i p_i - j p_j|}` over :math:`p_i, p_j > 0` (0 when the
        denominator is 0)."""
        c = self.c
        ip = c.i * c.p
        absdiff = torch.where(c.pair, (ip[:, :, None] - ip[:, None, :]).abs(), 0.0).sum((1, 2))
        return divide_or((c.p * c.s).sum(1), absdiff, 0.0)

    @feature
    def Complexity(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_{v,p}}\sum_{i,j} |i - j| \frac{p_i s_i + p_j s_j}{p_i + p_j}` over
        :math:`p_i, p_j > 0`."""
        c = self.c
        ps = c.p * c.s
        num = torch.where(c.pair, ps[:, :, None] + ps[:, None, :], 0.0)
        den = c.p[:, :, None] + c.p[:, None, :]
        den = torch.where(den == 0, torch.ones_like(den), den)
        return ((c.i[:, :, None] - c.i[:, None, :]).abs() * num / den).sum((1, 2)) / c.nvp

    @feature
    def Strength(self) -> torch.Tensor:
        r""":math:`\frac{\sum_{i,j} (p_i + p_j)(i - j)^2}{\sum_i s_i}` over :math:`p_i, p_j > 0` (0 when
        :math:`\sum_i s_i = 0`)."""
        c = self.c
        d2 = (c.i[:, :, None] - c.i[:, None, :]) ** 2
        strength = torch.where(c.pair, (c.p[:, :, None] + c.p[:, None, :]) * d2, 0.0).sum((1, 2))
        return divide_or(strength, c.s.sum(1), 0.0)
