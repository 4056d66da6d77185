r"""First-order statistics of the intensities inside each region (PyRadiomics ``firstorder``, 18 features).

X is the set of the :math:`N_p` intensities inside the region (original values, not binned), c the
``voxelArrayShift``, :math:`p(i)` the fraction of pixels in gray-level bin i (binned with binWidth/binCount), eps
PyRadiomics' ``numpy.spacing(1)``. The radiomics view of seed 000 §2 uses all of them.

Two exact routes to the same numbers: integer-valued regions with a modest range (8/16-bit images) are reduced
to a histogram of their values (``discretize`` leaves a value index in the batch cache), every sum and order
statistic is read from it; other regions are sorted. Percentiles follow ``numpy.percentile``'s default ("linear")
interpolation bit for bit, the median is the mean of the two middle values as in ``numpy.median``.
"""

from __future__ import annotations

import torch

from radclr.radiomics.aggregate import EPS
from radclr.radiomics.base import FeatureClass, RegionBatch, feature
from radclr.radiomics.levels import gray_levels

__all__ = ["FirstOrder"]


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``numpy``'s quantile interpolation (``numpy.lib._function_base_impl._lerp``)."""
    diff = b - a
    return torch.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


class _Distribution:
    """The intensities of each region as weighted values: ``values``/``weights`` ``[B, M]`` + order statistics."""

    def __init__(self, batch: RegionBatch):
        B = batch.batch_size
        cached = batch.cache.get("value_histogram")
        if cached is not None:  # integer intensities: [R] possible values and their [B, R] counts
            values, counts = cached
            self.values = values.expand(B, -1)
            self.weights = counts.to(torch.float64)
            self._cdf = counts.cumsum(1)
            self._sorted = None
        else:
            self.values = batch.image.flatten(1)
            self.weights = batch.mask.flatten(1).to(torch.float64)
            inf = torch.tensor(float("inf"), dtype=torch.float64, device=batch.device)
            self._sorted = torch.where(batch.mask, batch.image, inf).flatten(1).sort(1).values
        self.n = self.weights.sum(1)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over the region of ``x`` (a function of ``values``, same shape)."""
        return (self.weights * x).sum(1)

    def order_statistic(self, k: torch.Tensor) -> torch.Tensor:
        """Value at 0-based position ``k [B, m]`` (int64) of each region's sorted intensities."""
        if self._sorted is not None:
            return self._sorted.gather(1, k)
        pos = torch.searchsorted(self._cdf, k, right=True).clamp_(max=self.values.shape[1] - 1)
        return self.values.gather(1, pos)

    def percentile(self, q: float) -> torch.Tensor:
        """``numpy.percentile(x, q)`` with the default linear method, per region."""
        virtual = (self.n - 1) * (q / 100)
        prev = torch.floor(virtual)
        above = virtual >= self.n - 1
        last = (self.n - 1).to(torch.int64)
        lo = torch.where(above, last, prev.to(torch.int64))
        hi = torch.where(above, last, lo + 1)
        a, b = self.order_statistic(torch.stack([lo, hi], 1)).unbind(1)
        return _lerp(a, b, virtual - torch.where(above, -torch.ones_like(prev), prev))


class FirstOrder(FeatureClass):
    """PyRadiomics ``firstorder``: intensity statistics of the region (Zwanenburg et al., IBSI ch. 3.3-3.4)."""

    name = "firstorder"

    def __init__(self, batch: RegionBatch):
        super().__init__(batch)
        d = self.dist = _Distribution(batch)
        self.shift = float(batch.settings.voxel_array_shift)
        self.n = d.n
        self.mean = d.sum(d.values) / self.n
        dev = d.values - self.mean[:, None]
        self.m2 = d.sum(dev**2) / self.n
        self._dev = dev
        self._p10 = self._p90 = None

    # -- shared pieces -------------------------------------------------------------------------------------
    def _moment(self, k: int) -> torch.Tensor:
        return self.dist.sum(self._dev**k) / self.n

    def _percentiles(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._p10 is None:
            self._p10, self._p90 = self.dist.percentile(10), self.dist.percentile(90)
        return self._p10, self._p90

    def _minmax(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n.to(torch.int64)
        lo_hi = self.dist.order_statistic(torch.stack([torch.zeros_like(n), n - 1], 1))
        return lo_hi[:, 0], lo_hi[:, 1]

    # -- features ------------------------------------------------------------------------------------------
    @feature
    def Energy(self) -> torch.Tensor:
        r"""Energy :math:`= \sum_{x \in X} (x + c)^2`."""
        return self.dist.sum((self.dist.values + self.shift) ** 2)

    @feature
    def TotalEnergy(self) -> torch.Tensor:
        r"""Total energy :math:`= V_{pixel} \sum (x + c)^2`: Energy times the pixel area (product of the spacing)."""
        return self.Energy() * self.batch.spacing.prod(1)

    @feature
    def Entropy(self) -> torch.Tensor:
        r"""Entropy of the binned histogram :math:`= -\sum_i p(i) \log_2(p(i) + \epsilon)`."""
        p = self._binned_p()
        return -(p * torch.log2(p + EPS)).sum(1)

    @feature
    def Minimum(self) -> torch.Tensor:
        """Smallest intensity in the region."""
        return self._minmax()[0]

    @feature
    def Maximum(self) -> torch.Tensor:
        """Largest intensity in the region."""
        return self._minmax()[1]

    @feature
    def Mean(self) -> torch.Tensor:
        r"""Mean :math:`= \frac{1}{N_p}\sum x`."""
        return self.mean

    @feature
    def Median(self) -> torch.Tensor:
        """Median intensity (mean of the two middle values for an even count, as ``numpy.median``)."""
        n = self.n.to(torch.int64)
        mid = self.dist.order_statistic(torch.stack([(n - 1) // 2, n // 2], 1))
        return (mid[:, 0] + mid[:, 1]) / 2

    @feature
    def InterquartileRange(self) -> torch.Tensor:
        """75th minus 25th percentile."""
        return self.dist.percentile(75) - self.dist.percentile(25)

    @feature
    def Range(self) -> torch.Tensor:
        """Maximum minus minimum."""
        lo, hi = self._minmax()
        return hi - lo

    @feature
    def MeanAbsoluteDeviation(self) -> torch.Tensor:
        r"""Mean absolute deviation from the mean :math:`= \frac{1}{N_p}\sum |x - \bar{X}|`."""
        return self.dist.sum(self._dev.abs()) / self.n

    @feature
    def RobustMeanAbsoluteDeviation(self) -> torch.Tensor:
        r"""Mean absolute deviation of the intensities between the 10th and 90th percentile (inclusive) from
        their own mean."""
        p10, p90 = self._percentiles()
        v = self.dist.values
        keep = (v - p10[:, None] >= 0) & (v - p90[:, None] <= 0)
        w = self.dist.weights * keep
        n = w.sum(1)
        mean = (w * v).sum(1) / n
        return (w * (v - mean[:, None]).abs()).sum(1) / n

    @feature
    def RootMeanSquared(self) -> torch.Tensor:
        r"""Root mean square :math:`= \sqrt{\frac{1}{N_p}\sum (x + c)^2}`."""
        return torch.sqrt(self.Energy() / self.n)

    @feature(deprecated=True)
    def StandardDeviation(self) -> torch.Tensor:
        r"""Standard deviation :math:`= \sqrt{\frac{1}{N_p}\sum (x - \bar{X})^2}` (deprecated in PyRadiomics:
        not enabled by default, computed when asked for by name)."""
        return torch.sqrt(self.m2)

    @feature
    def Skewness(self) -> torch.Tensor:
        r"""Skewness :math:`= \mu_3 / \sigma^3` (0 for a flat region)."""
        m2 = torch.where(self.m2 == 0, torch.ones_like(self.m2), self.m2)
        return self._moment(3) / m2**1.5

    @feature
    def Kurtosis(self) -> torch.Tensor:
        r"""Kurtosis :math:`= \mu_4 / \sigma^4` (not the excess kurtosis: a Gaussian gives 3; 0 for a flat region)."""
        m2 = torch.where(self.m2 == 0, torch.ones_like(self.m2), self.m2)
        return self._moment(4) / m2**2.0

    @feature
    def Variance(self) -> torch.Tensor:
        r"""Variance :math:`= \frac{1}{N_p}\sum (x - \bar{X})^2`."""
        return torch.sqrt(self.m2) ** 2

    @feature
    def Uniformity(self) -> torch.Tensor:
        r"""Uniformity of the binned histogram :math:`= \sum_i p(i)^2`."""
        p = self._binned_p()
        return (p * p).sum(1)

    def _binned_p(self) -> torch.Tensor:
        counts = gray_levels(self.batch).counts.to(torch.float64)
        return counts / counts.sum(1, keepdim=True).clamp(min=1)


def _percentile_feature(q: float, doc: str):
    def f(self: FirstOrder) -> torch.Tensor:
        return self._percentiles()[0 if q == 10 else 1]

    f.__doc__ = doc
    return feature(f)


# PyRadiomics names two features with a leading digit, which `def` cannot spell
setattr(FirstOrder, "10Percentile", _percentile_feature(10, "10th percentile (numpy's linear interpolation)."))
setattr(FirstOrder, "90Percentile", _percentile_feature(90, "90th percentile (numpy's linear interpolation)."))
