r"""Gray Level Dependence Matrix features (PyRadiomics ``gldm``, 14 features).

A neighbour at distance :math:`\delta` (the ``distances`` setting: the 8-neighbourhood in 2-D) *depends* on the
centre pixel when both lie in the region and their gray levels differ by at most :math:`\alpha` (``gldm_a``).
:math:`P(i,j)` counts region pixels of gray level i with :math:`j - 1` dependent neighbours (j = 1 .. 9).
:math:`N_z = N_p` is the number of region pixels, :math:`p_g(i)`, :math:`p_d(j)` the marginals,
:math:`\epsilon` = ``numpy.spacing(1)``. Radiomics view of seed 000 §2 (SPEC §2).

The dependence count of every pixel of the batch is a sum of shifted comparisons (one per neighbour offset),
then one ``bincount`` over ``(region, level, count)`` builds all matrices.
"""

from __future__ import annotations

import torch

from radclr.radiomics.aggregate import EPS
from radclr.radiomics.base import feature
from radclr.radiomics.chunked import ChunkedFeatureClass, Group, precomputed
from radclr.radiomics.levels import with_region
from radclr.radiomics.neighbours import angles_2d, neighbourhood_2d, pair_views

__all__ = ["GLDM", "dependence_matrices"]


def dependence_matrices(group: Group) -> torch.Tensor:
    """Dependence counts ``int64 [b, G, 1 + n_neighbours]`` of a group of regions.

    Dependence is symmetric, so each of the half-set of offsets is compared once and credited to both pixels.
    """
    s = group.settings
    half = angles_2d(s.glcm_distances)
    alpha = s.gldm_a
    code = group.code
    if alpha == 0:  # equal gray level <=> equal slot, and code 0 (outside) only equals another outside pixel
        ref = code
    else:  # compare real gray levels, of pixels that are both inside
        ref = group.batch.binned[group.slice].to(torch.int32)
    inside = code != 0
    dep = torch.zeros(code.shape, dtype=torch.uint8, device=code.device)
    for dy, dx in half:
        a, b = pair_views(ref, dy, dx)
        if alpha == 0:
            same = a == b
        else:
            ia, ib = pair_views(inside, dy, dx)
            same = ((a - b).abs() <= alpha) & ia & ib
        da, db = pair_views(dep, dy, dx)
        da += same
        db += same
    n_dep = 2 * len(half) + 1
    key = with_region(code, group.size + 1, blocks=n_dep) * n_dep + dep  # (region, level slot, dependence)
    counts = torch.bincount(key.flatten(), minlength=len(group) * (group.size + 1) * n_dep)
    return counts.view(-1, group.size + 1, n_dep)[:, 1:]  # slot 0: pixels outside the region


class _Coefficients:
    def __init__(self, group: Group):
        P = precomputed(group.batch, "gldm", group.slice)  # the CPU fast path's kernel, when it ran
        P = (P if P is not None else dependence_matrices(group)).to(torch.float64)
        self.P = P  # [b, G, D]
        self.pd = P.sum(1)  # [b, D]
        self.pg = P.sum(2)  # [b, G]
        nz = self.pd.sum(1)
        self.nz = torch.where(nz == 0, torch.ones_like(nz), nz)
        self.i = group.values  # [b, G]
        self.j = torch.arange(1, P.shape[-1] + 1, dtype=torch.float64, device=P.device)  # [D]

    def matrix_sum(self, weight: torch.Tensor) -> torch.Tensor:
        return (self.P * weight).sum((1, 2)) / self.nz


class GLDM(ChunkedFeatureClass):
    """PyRadiomics ``gldm`` on a batch (Sun & Wee 1983; definitions as in the PyRadiomics docs)."""

    name = "gldm"

    def _elements_per_region(self, levels) -> int:
        return 4 * levels.size * (len(neighbourhood_2d(self.batch.settings.glcm_distances)) + 1)

    def _coefficients(self, group: Group) -> _Coefficients:
        return _Coefficients(group)

    @feature
    def SmallDependenceEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_j p_d(j)/j^2`."""
        c = self.c
        return (c.pd / c.j**2).sum(1) / c.nz

    @feature
    def LargeDependenceEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_j p_d(j) j^2`."""
        c = self.c
        return (c.pd * c.j**2).sum(1) / c.nz

    @feature
    def GrayLevelNonUniformity(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_i p_g(i)^2`."""
        c = self.c
        return (c.pg**2).sum(1) / c.nz

    @feature
    def DependenceNonUniformity(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_j p_d(j)^2`."""
        c = self.c
        return (c.pd**2).sum(1) / c.nz

    @feature
    def DependenceNonUniformityNormalized(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z^2}\sum_j p_d(j)^2`."""
        c = self.c
        return (c.pd**2).sum(1) / c.nz**2

    @feature
    def GrayLevelVariance(self) -> torch.Tensor:
        r""":math:`\sum_i p(i)(i - \mu)^2`, :math:`p(i) = p_g(i)/N_z`, :math:`\mu = \sum_i p(i) i`."""
        c = self.c
        p = c.pg / c.nz[:, None]
        mu = (p * c.i).sum(1, keepdim=True)
        return (p * (c.i - mu) ** 2).sum(1)

    @feature
    def DependenceVariance(self) -> torch.Tensor:
        r""":math:`\sum_j p(j)(j - \mu)^2`, :math:`p(j) = p_d(j)/N_z`, :math:`\mu = \sum_j p(j) j`."""
        c = self.c
        p = c.pd / c.nz[:, None]
        mu = (p * c.j).sum(1, keepdim=True)
        return (p * (c.j - mu) ** 2).sum(1)

    @feature
    def DependenceEntropy(self) -> torch.Tensor:
        r""":math:`-\sum_{i,j} p(i,j)\log_2(p(i,j) + \epsilon)`, :math:`p(i,j) = P(i,j)/N_z`."""
        c = self.c
        p = c.P / c.nz[:, None, None]
        return -(p * torch.log2(p + EPS)).sum((1, 2))

    @feature
    def LowGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_i p_g(i)/i^2`."""
        c = self.c
        return (c.pg / c.i**2).sum(1) / c.nz

    @feature
    def HighGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_i p_g(i)\, i^2`."""
        c = self.c
        return (c.pg * c.i**2).sum(1) / c.nz

    @feature
    def SmallDependenceLowGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_{i,j} P(i,j)/(i^2 j^2)`."""
        c = self.c
        return c.matrix_sum(1.0 / (c.i[:, :, None] ** 2 * c.j**2))

    @feature
    def SmallDependenceHighGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_{i,j} P(i,j)\, i^2/j^2`."""
        c = self.c
        return c.matrix_sum(c.i[:, :, None] ** 2 / c.j**2)

    @feature
    def LargeDependenceLowGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_{i,j} P(i,j)\, j^2/i^2`."""
        c = self.c
        return c.matrix_sum(c.j**2 / c.i[:, :, None] ** 2)

    @feature
    def LargeDependenceHighGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_z}\sum_{i,j} P(i,j)\, i^2 j^2`."""
        c = self.c
        return c.matrix_sum(c.i[:, :, None] ** 2 * c.j**2)
