r"""Gray Level Run Length Matrix features (PyRadiomics ``glrlm``, 16 features).

:math:`P(i,j|\theta)` counts runs -- maximal stretches of consecutive region pixels with gray level i -- of length
j along angle :math:`\theta` (0°, 45°, 90°, 135° in 2-D). A pixel outside the region ends a run. As in PyRadiomics,
features are computed per angle and averaged; an angle along which no line holds two region pixels is dropped.
:math:`N_r(\theta)` is the number of runs, :math:`N_p` the number of pixels, :math:`p_g(i)` and :math:`p_r(j)` the
marginals over lengths and gray levels, :math:`\epsilon` = ``numpy.spacing(1)``. Radiomics view of seed 000 §2.

Runs of the whole batch are found at once: each angle's pixels are listed line after line (rows, a transpose, or
a fixed permutation for the diagonals), codes carry the region and the parity of the line so that no run spans
two lines or regions, and ``torch.unique_consecutive`` returns every run's gray level and length in one pass.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from radclr.radiomics.aggregate import EPS, angle_mean
from radclr.radiomics.base import feature
from radclr.radiomics.chunked import ChunkedFeatureClass, Group, precomputed
from radclr.radiomics.levels import with_region
from radclr.radiomics.neighbours import angles_2d, line_layout

__all__ = ["GLRLM", "run_length_matrices"]


@lru_cache(maxsize=32)
def _line_order(H: int, W: int, direction: tuple[int, int], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels listed line after line along a diagonal ``direction`` (flat indices ``[H*W]``), and the parity
    (0/1) of the line each belongs to (``(r + c) % 2`` for both diagonals), in that order."""
    r = torch.arange(H)[:, None].expand(H, W)
    c = torch.arange(W)[None, :].expand(H, W)
    line = (c - r) if direction == (1, 1) else (c + r)  # which diagonal a pixel lies on
    key = (line - line.min()) * (H + 1) + r  # line by line, top to bottom within a line
    order = key.flatten().argsort()
    parity = (line.flatten()[order] % 2).to(torch.int16)
    return order.to(device), parity.to(device)


def _line_sequences(code_r: torch.Tensor, block: int):
    """Flattened codes along each angle, line after line, with ``block`` added on every other line.

    Adjacent lines (and adjacent regions, through the region offset already in ``code_r``) then never share a
    value, so a run can never continue from one line onto the next. Yields ``(direction, sequence)``.
    """
    B, H, W = code_r.shape
    dtype, device = code_r.dtype, code_r.device
    for direction in angles_2d([1]):
        if direction == (0, 1):
            par = (torch.arange(H, device=device, dtype=dtype) % 2 * block).view(1, H, 1)
            yield direction, (code_r + par).view(-1)
        elif direction == (1, 0):
            par = (torch.arange(W, device=device, dtype=dtype) % 2 * block).view(1, W, 1)
            out = torch.empty((B, W, H), dtype=dtype, device=device)
            yield direction, torch.add(code_r.transpose(1, 2), par, out=out).view(-1)  # one pass, transposed
    # both diagonal directions put a pixel on a line of parity (r + c) % 2: add it once, then reorder twice
    rc = torch.arange(H, device=device)[:, None] + torch.arange(W, device=device)[None, :]
    diag = (code_r + (rc % 2 * block).to(dtype)).view(B, H * W)
    for direction in ((1, 1), (1, -1)):
        order, _ = _line_order(H, W, direction, str(device))
        yield direction, diag.gather(1, order.expand(B, H * W)).view(-1)  # gather beats index_select(dim=1) here


def run_length_matrices(code: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run-length counts ``int64 [B, 4, G, Nr]`` of a level code map (0 = outside the region) and ``valid [B, 4]``.

    For each angle the codes (offset per region, and per line parity) are listed line after line and
    ``torch.unique_consecutive`` returns every run's code and length at once. ``valid`` is PyRadiomics'
    "multiElement" test: some line along the angle holds at least two region pixels (otherwise PyRadiomics
    clears the angle's matrix and drops the angle).
    """
    B, H, W = code.shape
    n = size + 1
    nr = max(H, W)
    block = B * n
    code_r = with_region(code, n, blocks=2)
    mats, valid = {}, {}
    for direction, sequence in _line_sequences(code_r, block):
        value, length = torch.unique_consecutive(sequence, return_counts=True)
        # bin value * nr + length (runs never cross a line, so 1 <= length <= nr); runs outside the region land
        # in level 0 and are dropped
        idx = torch.add(length, value, alpha=nr)
        counts = torch.bincount(idx, minlength=2 * block * nr + 1)[1:].view(2, B, n, nr)
        counts = (counts[0] + counts[1])[:, 1:]
        mats[direction] = counts
        multi = counts[..., 1:].flatten(1).amax(1) > 0  # a run of 2+ pixels: certainly a line with 2+ pixels
        if not bool(multi.all()):  # rare (e.g. a checkerboard of levels): count region pixels per line
            lines = line_layout((code != 0).to(torch.uint8), direction, fill=0)
            multi |= (lines.sum(-1, dtype=torch.int32) >= 2).flatten(1).any(1)
        valid[direction] = multi
    angles = angles_2d([1])
    valid_t = torch.stack([valid[a] for a in angles], 1)
    P = torch.stack([mats[a] for a in angles], 1)
    if not bool(valid_t.all()):
        P = P * valid_t[..., None, None]
    return P, valid_t


class _Coefficients:
    def __init__(self, group: Group):
        counted = precomputed(group.batch, "glrlm", group.slice)  # the CPU fast path's kernel, when it ran
        P, multi = counted if counted is not None else run_length_matrices(group.code, group.size)
        used = (P.sum((0, 1, 2)) > 0).nonzero()
        longest = int(used.max()) + 1 if used.numel() else 1
        P = P[..., :longest].to(torch.float64)  # run lengths past the longest run are empty columns
        self.P = P  # [b, A, G, Nr]
        self.n_runs = P.sum((-1, -2))  # [b, A]
        self.valid = multi & (self.n_runs > 0)
        self.nr = torch.where(self.valid, self.n_runs, torch.ones_like(self.n_runs))
        self.pr = P.sum(-2)  # [b, A, Nr]
        self.pg = P.sum(-1)  # [b, A, G]
        self.i = group.values[:, None, :]  # [b, 1, G]
        self.j = torch.arange(1, P.shape[-1] + 1, dtype=torch.float64, device=P.device)  # [Nr]

    def mean(self, per_angle: torch.Tensor) -> torch.Tensor:
        return angle_mean(per_angle, self.valid)


class GLRLM(ChunkedFeatureClass):
    """PyRadiomics ``glrlm`` on a batch (Galloway 1975; definitions as in the PyRadiomics docs)."""

    name = "glrlm"
    kernel_features = "glrlm_features"  # radclr.radiomics.kernels.glrlm.run_length_features on the CPU fast path

    def _elements_per_region(self, levels) -> int:
        H, W = levels.code.shape[1:]
        return 3 * 4 * levels.size * max(H, W)

    def _coefficients(self, group: Group) -> _Coefficients:
        return _Coefficients(group)

    def _matrix_sum(self, f_i: torch.Tensor, h_j: torch.Tensor) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j) f(i) h(j)` as a matrix-vector product."""
        c = self.c
        return c.mean(((c.P @ h_j) * f_i).sum(-1) / c.nr)

    @feature
    def ShortRunEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_j p_r(j)/j^2`: distribution of short runs."""
        c = self.c
        return c.mean((c.pr / c.j**2).sum(-1) / c.nr)

    @feature
    def LongRunEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_j p_r(j) j^2`: distribution of long runs."""
        c = self.c
        return c.mean((c.pr * c.j**2).sum(-1) / c.nr)

    @feature
    def GrayLevelNonUniformity(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_i p_g(i)^2`."""
        c = self.c
        return c.mean((c.pg**2).sum(-1) / c.nr)

    @feature
    def GrayLevelNonUniformityNormalized(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r^2}\sum_i p_g(i)^2`."""
        c = self.c
        return c.mean((c.pg**2).sum(-1) / c.nr**2)

    @feature
    def RunLengthNonUniformity(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_j p_r(j)^2`."""
        c = self.c
        return c.mean((c.pr**2).sum(-1) / c.nr)

    @feature
    def RunLengthNonUniformityNormalized(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r^2}\sum_j p_r(j)^2`."""
        c = self.c
        return c.mean((c.pr**2).sum(-1) / c.nr**2)

    @feature
    def RunPercentage(self) -> torch.Tensor:
        r""":math:`N_r / N_p` with :math:`N_p = \sum_j p_r(j) j` the pixels on the angle's runs."""
        c = self.c
        n_p = (c.pr * c.j).sum(-1)
        return c.mean(c.n_runs / torch.where(n_p > 0, n_p, torch.ones_like(n_p)))

    @feature
    def GrayLevelVariance(self) -> torch.Tensor:
        r""":math:`\sum_i p(i)(i - \mu)^2` with :math:`p(i) = p_g(i)/N_r`, :math:`\mu = \sum_i p(i) i`."""
        c = self.c
        p = c.pg / c.nr[..., None]
        mu = (p * c.i).sum(-1, keepdim=True)
        return c.mean((p * (c.i - mu) ** 2).sum(-1))

    @feature
    def RunVariance(self) -> torch.Tensor:
        r""":math:`\sum_j p(j)(j - \mu)^2` with :math:`p(j) = p_r(j)/N_r`, :math:`\mu = \sum_j p(j) j`."""
        c = self.c
        p = c.pr / c.nr[..., None]
        mu = (p * c.j).sum(-1, keepdim=True)
        return c.mean((p * (c.j - mu) ** 2).sum(-1))

    @feature
    def RunEntropy(self) -> torch.Tensor:
        r""":math:`-\sum_{i,j} p(i,j)\log_2(p(i,j) + \epsilon)` with :math:`p(i,j) = P(i,j)/N_r`."""
        c = self.c
        p = c.P / c.nr[..., None, None]
        return c.mean(-(p * torch.log2(p + EPS)).sum((-1, -2)))

    @feature
    def LowGrayLevelRunEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_i p_g(i)/i^2`."""
        c = self.c
        return c.mean((c.pg / c.i**2).sum(-1) / c.nr)

    @feature
    def HighGrayLevelRunEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_i p_g(i)\, i^2`."""
        c = self.c
        return c.mean((c.pg * c.i**2).sum(-1) / c.nr)

    @feature
    def ShortRunLowGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)/(i^2 j^2)`."""
        c = self.c
        return self._matrix_sum(1.0 / c.i**2, 1.0 / c.j**2)

    @feature
    def ShortRunHighGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)\, i^2/j^2`."""
        c = self.c
        return self._matrix_sum(c.i**2, 1.0 / c.j**2)

    @feature
    def LongRunLowGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)\, j^2/i^2`."""
        c = self.c
        return self._matrix_sum(1.0 / c.i**2, c.j**2)

    @feature
    def LongRunHighGrayLevelEmphasis(self) -> torch.Tensor:
        r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)\, i^2 j^2`."""
        c = self.c
        return self._matrix_sum(c.i**2, c.j**2)
