"""Gray Level Size Zone Matrix features (PyRadiomics ``glszm``), batched over regions.

Part of the 102-feature radiomics view of seed 000 §2 and of BYOP's feedback loop (seed 001 §3.2). A *zone* is a
set of connected pixels sharing one discretised gray level; in 2-D PyRadiomics connects the 8 neighbours
(``_cmatrices.calculate_glszm`` grows zones over all 8 offsets, inside the mask only). ``P(i, j)`` counts the zones
of gray level ``i`` and size ``j``. Let ``N_z`` be the number of zones, ``N_p`` the number of pixels, ``p = P / N_z``,
``p_g(i) = sum_j P(i, j)`` and ``p_s(j) = sum_i P(i, j)``.

radclr never builds the dense ``N_g x N_s`` matrix (``N_s`` can be the region's pixel count): zones come from
:func:`radclr.ops.component_stats`, run on the batch's shared gray-level codes
(:func:`radclr.radiomics.levels.gray_levels`), as a list of (region, gray level, size); every feature is a
per-region sum over zones (one scatter for all of them), over the non-zero cells of ``P`` (one sort of the zone
keys) or over ``p_g`` (a dense ``[B, N_g]`` count).
PyRadiomics deletes empty gray levels and sizes from ``P`` first; empty cells add 0 to every sum, so the values
are the same. ``i`` runs over the gray levels present in the region, as PyRadiomics' ``ivector``.

Degenerate regions (tested): one gray level or a single pixel give PyRadiomics' values (e.g. GrayLevelVariance 0,
ZoneEntropy ``-log2(1 + eps)`` for one zone); an empty mask gives NaN for every feature (PyRadiomics refuses it).
"""

from __future__ import annotations

import math

import torch

from radclr.ops.components import component_stats
from radclr.radiomics.base import FeatureClass, RegionBatch, feature
from radclr.radiomics.chunked import precomputed
from radclr.radiomics.levels import gray_levels

__all__ = ["GLSZM"]

_EPS = 2.220446049250313e-16  # numpy.spacing(1), PyRadiomics' epsilon in ZoneEntropy


class GLSZM(FeatureClass):
    """PyRadiomics ``glszm`` (16 features) from the zones of ``RegionBatch.binned`` (8-connectivity)."""

    name = "glszm"

    def __init__(self, batch: RegionBatch):
        super().__init__(batch)
        binned = batch.binned
        if binned.dim() != 3 or binned.dtype.is_floating_point or binned.dtype == torch.bool:
            raise ValueError(f"glszm needs integer binned levels [B, H, W], got {tuple(binned.shape)} {binned.dtype}")
        n_regions = binned.shape[0]
        # Zones of the batch's shared level codes (uint8 for the usual few levels; a bijection of the binned
        # levels within each region, so the same zones); the gray level of a zone is read back from the slot.
        levels = gray_levels(batch)
        zones = precomputed(batch, "glszm")  # the CPU fast path's kernel, when it ran
        if zones is None:
            zones = component_stats(levels.code, connectivity=8)
        image = zones.batch
        i = levels.values[image, zones.value - 1]
        j = zones.size.to(torch.float64)

        # Per-region sums over zones of every weight a feature needs, in one scatter.
        i2, j2 = i * i, j * j
        weights = torch.stack(
            [torch.ones_like(i), j, i, 1 / j2, j2, 1 / i2, i2, 1 / (i2 * j2), i2 / j2, j2 / i2, i2 * j2], 1
        )
        sums = torch.zeros(n_regions, weights.shape[1], dtype=torch.float64, device=weights.device)
        sums.index_add_(0, image, weights)
        n_zones = sums[:, 0]
        nz = torch.where(n_zones == 0, math.nan, n_zones)  # empty region: every feature NaN
        self._nz, self._n_pixels = nz, sums[:, 1]
        self._mean = sums[:, 2:] / nz[:, None]  # sum_zones w / N_z for w = i, 1/j^2, j^2, 1/i^2, i^2, ...
        # Variances as PyRadiomics computes them: sum p (x - mu)^2 (two passes; no cancellation).
        mean_i, mean_j = sums[:, 2] / nz, sums[:, 1] / nz
        centred = torch.stack([(i - mean_i.index_select(0, image)) ** 2, (j - mean_j.index_select(0, image)) ** 2], 1)
        self._variance = torch.zeros(n_regions, 2, dtype=torch.float64, device=i.device).index_add_(0, image, centred)
        self._variance /= nz[:, None]

        # Non-zero cells of P and of p_s: sort the zones by (region, size, gray level) once.
        n_gray = int(zones.value.max()) + 1 if len(zones) else 1
        max_size = int(zones.size.max()) + 1 if len(zones) else 1
        keys, _ = torch.sort((image * max_size + zones.size) * n_gray + zones.value)
        cells, cell_count = torch.unique_consecutive(keys, return_counts=True)
        cell_image = cells // (max_size * n_gray)
        p = cell_count.to(torch.float64) / nz.index_select(0, cell_image)
        entropy = torch.zeros(n_regions, dtype=torch.float64, device=p.device)
        self._entropy = -entropy.index_add_(0, cell_image, p * torch.log2(p + _EPS))
        sizes, size_count = torch.unique_consecutive(keys // n_gray, return_counts=True)
        size_sq = torch.zeros(n_regions, dtype=torch.float64, device=p.device)
        self._size_sq = size_sq.index_add_(0, sizes // max_size, size_count.to(torch.float64) ** 2)
        per_gray = torch.bincount(image * n_gray + zones.value, minlength=n_regions * n_gray).view(n_regions, n_gray)
        self._gray_sq = per_gray.to(torch.float64).square().sum(1)

    @feature
    def SmallAreaEmphasis(self) -> torch.Tensor:
        """SAE = sum P(i, j) / j^2 / N_z: large for fine textures (many small zones)."""
        return self._mean[:, 1]

    @feature
    def LargeAreaEmphasis(self) -> torch.Tensor:
        """LAE = sum P(i, j) j^2 / N_z: large for coarse textures."""
        return self._mean[:, 2]

    @feature
    def GrayLevelNonUniformity(self) -> torch.Tensor:
        """GLN = sum_i p_g(i)^2 / N_z."""
        return self._gray_sq / self._nz

    @feature
    def GrayLevelNonUniformityNormalized(self) -> torch.Tensor:
        """GLNN = sum_i p_g(i)^2 / N_z^2."""
        return self._gray_sq / self._nz**2

    @feature
    def SizeZoneNonUniformity(self) -> torch.Tensor:
        """SZN = sum_j p_s(j)^2 / N_z."""
        return self._size_sq / self._nz

    @feature
    def SizeZoneNonUniformityNormalized(self) -> torch.Tensor:
        """SZNN = sum_j p_s(j)^2 / N_z^2."""
        return self._size_sq / self._nz**2

    @feature
    def ZonePercentage(self) -> torch.Tensor:
        """ZP = N_z / N_p."""
        return self._nz / self._n_pixels

    @feature
    def GrayLevelVariance(self) -> torch.Tensor:
        """GLV = sum p(i, j) (i - mu)^2, mu = sum p(i, j) i."""
        return self._variance[:, 0]

    @feature
    def ZoneVariance(self) -> torch.Tensor:
        """ZV = sum p(i, j) (j - mu)^2, mu = sum p(i, j) j."""
        return self._variance[:, 1]

    @feature
    def ZoneEntropy(self) -> torch.Tensor:
        """ZE = -sum p(i, j) log2(p(i, j) + eps), eps = numpy.spacing(1)."""
        return torch.where(torch.isnan(self._nz), math.nan, self._entropy)

    @feature
    def LowGrayLevelZoneEmphasis(self) -> torch.Tensor:
        """LGLZE = sum P(i, j) / i^2 / N_z."""
        return self._mean[:, 3]

    @feature
    def HighGrayLevelZoneEmphasis(self) -> torch.Tensor:
        """HGLZE = sum P(i, j) i^2 / N_z."""
        return self._mean[:, 4]

    @feature
    def SmallAreaLowGrayLevelEmphasis(self) -> torch.Tensor:
        """SALGLE = sum P(i, j) / (i^2 j^2) / N_z."""
        return self._mean[:, 5]

    @feature
    def SmallAreaHighGrayLevelEmphasis(self) -> torch.Tensor:
        """SAHGLE = sum P(i, j) i^2 / j^2 / N_z."""
        return self._mean[:, 6]

    @feature
    def LargeAreaLowGrayLevelEmphasis(self) -> torch.Tensor:
        """LALGLE = sum P(i, j) j^2 / i^2 / N_z."""
        return self._mean[:, 7]

    @feature
    def LargeAreaHighGrayLevelEmphasis(self) -> torch.Tensor:
        """LAHGLE = sum P(i, j) i^2 j^2 / N_z."""
        return self._mean[:, 8]
