r"""Gray Level Co-occurrence Matrix features (PyRadiomics ``glcm``, 24 features).

:math:`P(i,j|\delta,\theta)` counts pairs of region pixels at offset :math:`\delta` along angle :math:`\theta`
with gray levels i and j. As PyRadiomics does in 2-D: the offsets of the ``distances`` setting (4 angles for
distance 1), ``symmetricalGLCM`` adds the transpose, each angle's matrix is normalised to :math:`p(i,j)`, every
feature is computed per angle and the angles are averaged (``nanmean``); an angle without any pair is dropped.
Notation (PyRadiomics docs): :math:`p_x, p_y` marginals, :math:`\mu_x, \mu_y` their means, :math:`\sigma_x,
\sigma_y` their standard deviations, :math:`p_{x+y}(k)` and :math:`p_{x-y}(k)` the distributions of
:math:`i + j` and :math:`|i - j|`, :math:`HX, HY, HXY, HXY1, HXY2` the entropies of the Imc features,
:math:`\epsilon` = ``numpy.spacing(1)``. Radiomics view of seed 000 §2 (SPEC §2).

The matrices of the whole batch come from one ``bincount`` per angle over ``(region, i, j)`` codes of the
shifted level maps (:mod:`radclr.radiomics.levels`), never from a loop over regions or pixels.
"""

from __future__ import annotations

import torch

from radclr.radiomics.aggregate import EPS, angle_mean, divide_or
from radclr.radiomics.base import feature
from radclr.radiomics.chunked import ChunkedFeatureClass, Group, precomputed
from radclr.radiomics.levels import with_region
from radclr.radiomics.neighbours import angles_2d, pair_views

__all__ = ["GLCM", "glcm_matrices"]


def glcm_matrices(code: torch.Tensor, size: int, angles: list[tuple[int, int]]) -> torch.Tensor:
    """Raw (asymmetric, unnormalised) co-occurrence counts ``int64 [B, A, G, G]`` of a level code map.

    code: ``[B, H, W]`` level slot + 1 inside the region, 0 outside (see :class:`~radclr.radiomics.levels.GrayLevels`).
    Each angle is one ``bincount`` over ``(region, i, j)`` codes of the batch; row/column 0 collect the pairs with
    a pixel outside the region and are dropped.
    """
    B = code.shape[0]
    n = size + 1
    first = with_region(code, n, blocks=n)  # region * n + i, then * n + j below
    out = []
    for dy, dx in angles:
        a, _ = pair_views(first, dy, dx)
        _, b = pair_views(code, dy, dx)
        counts = torch.bincount((a * n + b).flatten(), minlength=B * n * n)
        out.append(counts.view(B, n, n)[:, 1:, 1:])
    return torch.stack(out, 1)


class _Coefficients:
    """PyRadiomics' ``RadiomicsGLCM._calculateCoefficients`` for a group of regions, per angle ``[b, A]``."""

    def __init__(self, group: Group):
        s = group.settings
        angles = angles_2d(s.glcm_distances)
        P = precomputed(group.batch, "glcm", group.slice)  # the CPU fast path's kernel, when it ran
        if P is None:
            P = glcm_matrices(group.code, group.size, angles)
        P = P.to(torch.float64)
        if s.symmetrical_glcm:
            P = P + P.transpose(-1, -2)
        total = P.sum((-1, -2))
        self.valid = total > 0
        P = P / torch.where(self.valid, total, torch.ones_like(total))[..., None, None]
        self.P = P
        v = group.values  # [b, G] gray level of each slot
        self.v = v
        self.vi = v[:, None, :, None]
        self.vj = v[:, None, None, :]
        self.n_gray = group.n_gray.to(torch.float64)[:, None]
        self.present = group.counts > 0
        self.px = P.sum(-1)  # [b, A, G]
        self.py = P.sum(-2)
        self.ux = (self.px * v[:, None, :]).sum(-1)  # [b, A]
        self.uy = (self.py * v[:, None, :]).sum(-1)
        b, A, G, _ = P.shape
        kmax = max(int(v.max()), 1) if b else 1
        vsum = (self.vi + self.vj).expand(b, A, G, G).reshape(b, A, G * G).to(torch.int64) - 2
        vdiff = (self.vi - self.vj).abs().expand(b, A, G, G).reshape(b, A, G * G).to(torch.int64)
        flat = P.reshape(b, A, G * G)
        self.p_sum = torch.zeros(b, A, 2 * kmax - 1, dtype=torch.float64, device=P.device).scatter_add_(2, vsum, flat)
        self.p_diff = torch.zeros(b, A, kmax, dtype=torch.float64, device=P.device).scatter_add_(2, vdiff, flat)
        self.k_sum = torch.arange(2, 2 * kmax + 1, dtype=torch.float64, device=P.device)
        self.k_diff = torch.arange(0, kmax, dtype=torch.float64, device=P.device)
        self.hxy = -(P * torch.log2(P + EPS)).sum((-1, -2))
        self._pxy = None

    def mean(self, per_angle: torch.Tensor) -> torch.Tensor:
        return angle_mean(per_angle, self.valid)

    def sum_ij(self, weights: torch.Tensor) -> torch.Tensor:
        return (self.P * weights).sum((-1, -2))

    def bilinear(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:math:`\\sum_{i,j} p(i,j)\\, x_i y_j` for per-angle vectors ``x``, ``y`` ``[b, A, G]``."""
        return (x * (self.P @ y[..., None]).squeeze(-1)).sum(-1)

    def pxy(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`p_x(i)p_y(j)` and its :math:`\\log_2(\\cdot + \\epsilon)` (shared by Imc1, Imc2)."""
        if self._pxy is None:
            pxy = self.px[..., :, None] * self.py[..., None, :]
            self._pxy = (pxy, torch.log2(pxy + EPS))
        return self._pxy


class GLCM(ChunkedFeatureClass):
    """PyRadiomics ``glcm`` on a batch (Haralick et al. 1973; definitions as in the PyRadiomics docs)."""

    name = "glcm"

    def _elements_per_region(self, levels) -> int:
        return 6 * len(angles_2d(self.batch.settings.glcm_distances)) * levels.size**2

    def _coefficients(self, group: Group) -> _Coefficients:
        return _Coefficients(group)

    def _cluster(self, power: int) -> torch.Tensor:
        # sum_ij p(i,j) (i + j - ux - uy)^k, grouped by k = i + j
        c = self.c
        t = c.k_sum - (c.ux + c.uy)[..., None]
        return c.mean((c.p_sum * t**power).sum(-1))

    @feature
    def Autocorrelation(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} p(i,j)\, i j`: magnitude of fineness and coarseness of texture."""
        c = self.c
        v = c.v[:, None, :].expand_as(c.px)
        return c.mean(c.bilinear(v, v))

    @feature
    def JointAverage(self) -> torch.Tensor:
        r""":math:`\mu_x = \sum_{i,j} p(i,j)\, i`: mean gray level (the GLCM is symmetrical by default)."""
        return self.c.mean(self.c.ux)

    @feature
    def ClusterProminence(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} (i + j - \mu_x - \mu_y)^4 p(i,j)`: skewness/asymmetry of the GLCM."""
        return self._cluster(4)

    @feature
    def ClusterShade(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} (i + j - \mu_x - \mu_y)^3 p(i,j)`: skewness and uniformity of the GLCM."""
        return self._cluster(3)

    @feature
    def ClusterTendency(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} (i + j - \mu_x - \mu_y)^2 p(i,j)`: grouping of pixels with similar gray levels."""
        return self._cluster(2)

    @feature
    def Contrast(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} (i - j)^2 p(i,j)`: local intensity variation."""
        c = self.c
        return c.mean((c.p_diff * c.k_diff**2).sum(-1))

    @feature
    def Correlation(self) -> torch.Tensor:
        r""":math:`\frac{\sum p(i,j) i j - \mu_x \mu_y}{\sigma_x \sigma_y}` (as
        :math:`\sum p(i,j)(i-\mu_x)(j-\mu_y) / (\sigma_x\sigma_y + \epsilon)`; 1 where :math:`\sigma_x\sigma_y = 0`)."""
        c = self.c
        dx = c.v[:, None, :] - c.ux[..., None]  # [b, A, G]
        dy = c.v[:, None, :] - c.uy[..., None]
        sigx = (c.px * dx**2).sum(-1) ** 0.5
        sigy = (c.py * dy**2).sum(-1) ** 0.5
        corm = c.bilinear(dx, dy)
        corr = corm / (sigx * sigy + EPS)
        corr = torch.where(sigx * sigy == 0, torch.ones_like(corr), corr)
        return c.mean(corr)

    @feature
    def DifferenceAverage(self) -> torch.Tensor:
        r""":math:`\sum_k k\, p_{x-y}(k)`."""
        c = self.c
        return c.mean((c.k_diff * c.p_diff).sum(-1))

    @feature
    def DifferenceEntropy(self) -> torch.Tensor:
        r""":math:`-\sum_k p_{x-y}(k) \log_2(p_{x-y}(k) + \epsilon)`."""
        c = self.c
        return c.mean(-(c.p_diff * torch.log2(c.p_diff + EPS)).sum(-1))

    @feature
    def DifferenceVariance(self) -> torch.Tensor:
        r""":math:`\sum_k (k - DA)^2 p_{x-y}(k)` with DA the difference average."""
        c = self.c
        da = (c.k_diff * c.p_diff).sum(-1, keepdim=True)
        return c.mean((c.p_diff * (c.k_diff - da) ** 2).sum(-1))

    @feature
    def JointEnergy(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} p(i,j)^2` (angular second moment)."""
        c = self.c
        return c.mean((c.P**2).sum((-1, -2)))

    @feature
    def JointEntropy(self) -> torch.Tensor:
        r""":math:`HXY = -\sum_{i,j} p(i,j) \log_2(p(i,j) + \epsilon)`."""
        return self.c.mean(self.c.hxy)

    @feature
    def Imc1(self) -> torch.Tensor:
        r"""Informational measure of correlation 1: :math:`\frac{HXY - HXY1}{\max(HX, HY)}` (0 where the
        denominator is 0), :math:`HXY1 = -\sum p(i,j)\log_2(p_x(i)p_y(j) + \epsilon)`."""
        c = self.c
        hx = -(c.px * torch.log2(c.px + EPS)).sum(-1)
        hy = -(c.py * torch.log2(c.py + EPS)).sum(-1)
        _, log_pxy = c.pxy()
        hxy1 = -(c.P * log_pxy).sum((-1, -2))
        return c.mean(divide_or(c.hxy - hxy1, torch.fmax(hx, hy), 0.0))

    @feature
    def Imc2(self) -> torch.Tensor:
        r"""Informational measure of correlation 2: :math:`\sqrt{1 - e^{-2(HXY2 - HXY)}}` (0 where
        :math:`HXY2 = HXY`), :math:`HXY2 = -\sum p_x(i)p_y(j)\log_2(p_x(i)p_y(j) + \epsilon)`."""
        c = self.c
        pxy, log_pxy = c.pxy()
        hxy2 = -(pxy * log_pxy).sum((-1, -2))
        imc2 = torch.pow(1 - torch.exp(-2 * (hxy2 - c.hxy)), 0.5)
        return c.mean(torch.where(hxy2 == c.hxy, torch.zeros_like(imc2), imc2))

    @feature
    def Idm(self) -> torch.Tensor:
        r"""Inverse difference moment :math:`\sum_k p_{x-y}(k) / (1 + k^2)`."""
        c = self.c
        return c.mean((c.p_diff / (1 + c.k_diff**2)).sum(-1))

    @feature
    def MCC(self) -> torch.Tensor:
        r"""Maximal correlation coefficient: square root of the second largest eigenvalue of
        :math:`Q(i,j) = \sum_k \frac{p(i,k)p(j,k)}{p_x(i)p_y(k) + \epsilon}` (1 for a region with one gray level)."""
        return _mcc(self.c)

    @feature
    def Idmn(self) -> torch.Tensor:
        r"""Inverse difference moment normalised :math:`\sum_k p_{x-y}(k) / (1 + k^2/N_g^2)`, :math:`N_g` the
        region's largest gray level."""
        c = self.c
        return c.mean((c.p_diff / (1 + c.k_diff**2 / c.n_gray[..., None] ** 2)).sum(-1))

    @feature
    def Id(self) -> torch.Tensor:
        r"""Inverse difference (homogeneity 1) :math:`\sum_k p_{x-y}(k) / (1 + k)`."""
        c = self.c
        return c.mean((c.p_diff / (1 + c.k_diff)).sum(-1))

    @feature
    def Idn(self) -> torch.Tensor:
        r"""Inverse difference normalised :math:`\sum_k p_{x-y}(k) / (1 + k/N_g)`."""
        c = self.c
        return c.mean((c.p_diff / (1 + c.k_diff / c.n_gray[..., None])).sum(-1))

    @feature
    def InverseVariance(self) -> torch.Tensor:
        r""":math:`\sum_{k \ge 1} p_{x-y}(k) / k^2`."""
        c = self.c
        return c.mean((c.p_diff[..., 1:] / c.k_diff[1:] ** 2).sum(-1))

    @feature
    def MaximumProbability(self) -> torch.Tensor:
        r""":math:`\max_{i,j} p(i,j)`: occurrences of the most frequent pair of neighbouring gray levels."""
        c = self.c
        return c.mean(c.P.amax((-1, -2)))

    @feature
    def SumAverage(self) -> torch.Tensor:
        r""":math:`\sum_k k\, p_{x+y}(k)` (equals 2 x JointAverage for a symmetrical GLCM)."""
        c = self.c
        return c.mean((c.k_sum * c.p_sum).sum(-1))

    @feature
    def SumEntropy(self) -> torch.Tensor:
        r""":math:`-\sum_k p_{x+y}(k) \log_2(p_{x+y}(k) + \epsilon)`."""
        c = self.c
        return c.mean(-(c.p_sum * torch.log2(c.p_sum + EPS)).sum(-1))

    @feature
    def SumSquares(self) -> torch.Tensor:
        r""":math:`\sum_{i,j} (i - \mu_x)^2 p(i,j)` (variance of the gray levels of the pairs)."""
        c = self.c
        return c.mean((c.px * (c.v[:, None, :] - c.ux[..., None]) ** 2).sum(-1))


_MCC_EXACT_MAX_LEVELS = 24  # up to this many level slots, PyRadiomics' own eigvals route is cheap enough


def _mcc(c: _Coefficients) -> torch.Tensor:
    """MCC per region: PyRadiomics' exact route, with a fast symmetric route for many gray levels.

    With up to ``_MCC_EXACT_MAX_LEVELS`` level slots (8-bit images at binWidth 25 have <= 11) every region takes
    :func:`_mcc_exact`. Beyond that, general eigenvalues get expensive; without PyRadiomics' epsilon
    :math:`Q = D_x^{-1} P D_y^{-1} P^T` is similar to the symmetric :math:`S = M M^T`,
    :math:`M = D_x^{-1/2} P D_y^{-1/2}`, whose eigenvalues ``eigvalsh`` gives quickly. The epsilon changes an
    entry of Q by at most :math:`\\epsilon / (p_x(i) p_y(k))` relative, so regions where that bound exceeds 1e-6,
    and regions whose second eigenvalue is near 0 (where PyRadiomics' NaN-or-0 outcome depends on rounding),
    take the exact route as well.
    """
    P, px, py = c.P, c.px, c.py
    b, A, G, _ = P.shape
    one_level = c.present.sum(1) < 2
    if G < 2:
        return torch.ones(b, dtype=torch.float64, device=P.device)
    if G <= _MCC_EXACT_MAX_LEVELS:
        return torch.where(one_level, torch.ones(b, dtype=torch.float64, device=P.device),
                           _mcc_exact(c, torch.arange(b, device=P.device)))
    zero = torch.zeros((), dtype=P.dtype, device=P.device)
    rx = torch.where(px > 0, px.clamp(min=1e-300).rsqrt(), zero)
    ry = torch.where(py > 0, py.clamp(min=1e-300).rsqrt(), zero)
    M = P * rx[..., :, None] * ry[..., None, :]
    lam2 = torch.linalg.eigvalsh(M @ M.transpose(-1, -2))[..., -2]
    mcc = c.mean(lam2.clamp(min=0).sqrt())
    pxy = px[..., :, None] * py[..., None, :]
    smallest = torch.where(P > 0, pxy, torch.full_like(pxy, float("inf"))).flatten(1).amin(1)  # [b]
    delicate = ((lam2 < 1e-9) & c.valid).any(1) | (EPS / smallest > 1e-6)
    delicate = (delicate & ~one_level).nonzero().flatten()
    if delicate.numel():
        mcc[delicate] = _mcc_exact(c, delicate)
    return torch.where(one_level, torch.ones_like(mcc), mcc)


def _mcc_exact(c: _Coefficients, regions: torch.Tensor) -> torch.Tensor:
    """MCC as PyRadiomics computes it with ``numpy.linalg.eigvals`` on the matrix of the levels present.

    Absent level slots get -1 on the diagonal (their rows/columns are otherwise 0), so their eigenvalues are
    exactly -1 and are set apart from the present block's, which lie in [0, 1]. numpy returns real eigenvalues
    when every eigenvalue of the region's stack is real -- then a second eigenvalue rounded below 0 gives a NaN
    square root and that angle is skipped by ``nanmean``; otherwise the complex square root's real part is used.
    """
    P, px, py = c.P[regions], c.px[regions], c.py[regions]
    valid, present = c.valid[regions], c.present[regions]
    b, A, G, _ = P.shape
    ratio = P / (px[..., :, None] * py[..., None, :] + EPS)
    Q = ratio @ P.transpose(-1, -2)
    absent = ~present[:, None, :].expand(b, A, G)
    Q = Q - torch.diag_embed(absent.to(Q.dtype))
    eig = torch.linalg.eigvals(Q)  # [b, A, G] complex
    real, imag = eig.real, eig.imag
    sentinel = real < -0.5  # the absent slots' -1 (eigenvalues come in no particular slot order)
    real = torch.where(sentinel, torch.full_like(real, -float("inf")), real)  # keep them out of the top two
    second = real.argsort(-1, descending=True)[..., 1:2]
    lam_re = real.gather(-1, second).squeeze(-1)
    lam_im = imag.gather(-1, second).squeeze(-1)
    all_real = ((imag == 0) | ~valid[..., None]).all(-1).all(-1)  # numpy decides per region, over its angles
    root_complex = torch.sqrt(torch.complex(lam_re, lam_im)).real
    root_real = torch.sqrt(lam_re)  # NaN for a negative eigenvalue, as numpy
    return angle_mean(torch.where(all_real[:, None], root_real, root_complex), valid)
