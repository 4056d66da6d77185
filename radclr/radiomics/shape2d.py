"""2-D shape features (PyRadiomics ``shape2D``), batched over regions.

The radiomics view of seed 000 §2 and of BYOP's re-extracted regions (seed 001 §3.2) includes PyRadiomics' nine
default 2-D shape features. PyRadiomics (``radiomics/shape2D.py`` and ``_cshape.calculate_coefficients2D``) pads the
mask with one empty pixel and runs marching squares over every 2x2 cell: each cell's corner pattern (code 0-15)
selects up to two line segments joining midpoints of the cell's edges. Perimeter is the summed segment length,
MeshSurface the signed area they enclose, MaximumDiameter the largest distance between two segment end points.

radclr never loops over cells. Every contour vertex is a *crossing* -- the midpoint between two edge-adjacent
pixels of which exactly one is in the mask -- and every cell's pattern is known from the crossings on its edges:

- ``N_v`` / ``N_h``: crossings between vertically / horizontally adjacent pixels. A cell whose left and right edges
  are crossed holds a horizontal segment (length ``s_x``) or, when its top edge is crossed too, a saddle (two
  diagonals); a cell with one crossed vertical edge holds one diagonal (length ``hypot(s_x, s_y) / 2``) and has one
  (code 1, 2, 4, 8) or three (7, 11, 13, 14) corners in the mask. Every crossing ends two segments, so with
  ``n_d`` diagonals, horizontal segments = ``N_v - n_d / 2`` and vertical ones = ``N_h - n_d / 2``.
- The enclosed area of a cell is a quarter of its corners in the mask, minus 1/8 for a one-corner cell, plus 1/8
  for a three-corner cell, minus 1/4 for a saddle; summed over cells: ``A = N_p + (n_3 - n_1) / 8 - n_saddle / 4``
  (times ``s_x s_y``). This equals PyRadiomics' signed triangle sum (its table is consistently oriented).
- Pixel-coordinate moments for the PCA features come from the horizontal crossings too: consecutive crossings of a
  row enter and leave the mask, so they delimit its runs of pixels, and sums of 1, y, y^2, x, x^2, xy over a run
  have closed forms -- exact in int64 (centred moments are formed from exact integer sums, so a straight line
  gets a minor eigenvalue of exactly 0).
- The diameter is attained between two convex-hull vertices. A hull vertex is the extreme crossing of its row and
  of its column and lies on the staircase of its side; a parallel Graham scan thins large candidate sets further
  (any prefix of it keeps all hull vertices). Only the survivors enter the pairwise distance computation.

So the work over all pixels is two byte compares and two ``nonzero`` calls; the rest is proportional to the
contour length (and the number of hull candidates squared for the diameter).

Degenerate regions (the policy, tested):

- single pixel: MeshSurface 0.5, Perimeter 2*sqrt(2), MaximumDiameter 1 (times spacing), MajorAxisLength =
  MinorAxisLength = 0 and Elongation NaN (0/0), as PyRadiomics;
- a one-pixel-wide straight line: MinorAxisLength 0 and Elongation 0, as PyRadiomics. For a *diagonal* line the
  exact minor eigenvalue is 0 and radclr returns 0; PyRadiomics' LAPACK eigen-solver returns rounding noise there
  (lambda_minor ~ 1e-16 lambda_major: MinorAxisLength ~ 1e-6, Elongation ~ 1e-8 for 20-60 pixel lines), so those
  two agree only to that absolute level (such a region is refused by PyRadiomics' extractor only if it is
  axis-aligned; a diagonal line passes ``minimumROIDimensions=2``);
- empty mask: every feature NaN (PyRadiomics refuses such a mask).

SphericalDisproportion (``1 / Sphericity``) is deprecated in PyRadiomics 3.1: computed when asked for by name, not
part of the default nine.
"""

from __future__ import annotations

import math

import torch

from radclr.ops.indexing import flatnonzero
from radclr.radiomics.base import FeatureClass, RegionBatch, feature
from radclr.radiomics.chunked import precomputed

__all__ = ["Shape2D"]

# PyRadiomics rounds eigenvalues in (-1e-10, 0) to 0 (machine precision) before taking square roots.
_EIGEN_ROUNDING = 1e-10
# Pairwise-distance blocks are bounded to this many entries (bytes = 8x).
_PAIRWISE_BLOCK = 1 << 22
# The parallel hull scan thins the diameter candidates when the pairwise block would exceed this many entries;
# it runs at most this many rounds (any number is exact, more rounds leave fewer candidates).
_THIN_ABOVE = 1 << 20
_HULL_ROUNDS = 6
# Squared distances in half-pixel units stay below 2^24 (exact in float32) while rows and columns are below this.
_FLOAT32_EXACT = 2896


def _padded(mask: torch.Tensor) -> torch.Tensor:
    """The masks with a one-pixel empty border, flattened: ``[B * (H + 2) * (W + 2)]`` bool.

    In this layout a pixel's neighbours are fixed offsets (+-1, +-(W + 2)) that never leave the tensor or wrap
    into another row or image with a non-empty pixel -- so crossings and neighbour look-ups need no bounds checks.
    """
    n_regions, height, width = mask.shape
    padded = torch.zeros(n_regions, height + 2, width + 2, dtype=torch.bool, device=mask.device)
    padded[:, 1:-1, 1:-1] = mask
    return padded.view(-1)


def _segment_sums(values: torch.Tensor, position: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Sums of ``values`` (``[K]`` or ``[K, C]``) whose sorted ``position`` lies in ``[bounds[b], bounds[b + 1])``."""
    total = torch.cat([values.new_zeros((1, *values.shape[1:])), torch.cumsum(values, 0)])
    cut = torch.searchsorted(position, bounds)
    return total.index_select(0, cut[1:]) - total.index_select(0, cut[:-1])


def _compact(keep: torch.Tensor, *columns: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Move each row's kept entries to the front (order kept) -> (counts ``[B]``, columns cut to the widest row).

    Slots past a row's count repeat its first kept entry, which leaves a maximum distance unchanged.
    """
    counts = keep.sum(1)
    width = max(int(counts.max()), 1) if keep.numel() else 1
    order = torch.argsort(keep.to(torch.uint8), dim=1, descending=True, stable=True)[:, :width]
    filled = torch.arange(width, device=keep.device) < counts[:, None]
    out = []
    for column in columns:
        picked = column.gather(1, order)
        out.append(torch.where(filled, picked, picked[:, :1]))
    return counts, out


def _chains(image, y, x, n_regions: int, n_rows: int):
    """Left and right chains of crossings that can be convex-hull vertices, compacted in row order.

    ``y``/``x`` are non-negative integer coordinates (half-pixel units), ``y`` below ``n_rows``. A hull vertex is
    the leftmost or rightmost point of its row (left / right chain) and lies strictly outside every point of its
    chain above it or every point below it: a point with chain points at least as far out both above and below
    lies between the segment joining them and the other chain, inside the hull. Rows are dense per-region
    tables, so this is a few scatter / cummin passes over ``B x rows`` entries.
    Returns, per chain, (counts ``[B]``, y ``[B, K]``, x ``[B, K]``).
    """
    big = torch.iinfo(torch.int64).max
    key = image * n_rows + y
    rows = torch.arange(n_rows, device=y.device).expand(n_regions, n_rows)
    chains = []
    for sign in (1, -1):
        # the right chain is the left chain of the mirrored points: work with sign * x, missing rows = big
        table = torch.full((n_regions * n_rows,), big, device=y.device)
        col = table.scatter_reduce_(0, key, sign * x, reduce="amin").view(n_regions, n_rows)
        outer_above = torch.cummin(col, 1).values.roll(1, 1)
        outer_above[:, 0] = big
        outer_below = torch.cummin(col.flip(1), 1).values.flip(1).roll(-1, 1)
        outer_below[:, -1] = big
        keep = (col < big) & ((col < outer_above) | (col < outer_below))
        counts, (cy, cx) = _compact(keep, rows, sign * col)
        chains.append((counts, cy, cx))
    return chains


def _convex_chain(counts: torch.Tensor, y: torch.Tensor, x: torch.Tensor, left_side: bool):
    """Thin compacted chains towards their convex-hull vertices (a parallel Graham scan) -> the same layout.

    A chain point on the inner side of (or on) the segment joining its neighbours above and below lies inside the
    hull -- between that segment and the other chain -- so it is not a diameter end point. Chains are compact, so
    a point's neighbours are the adjacent slots; points of one rank parity are judged at a time (their neighbours
    stay), then the chain is compacted again. Stops after ``_HULL_ROUNDS`` rounds, when nothing changes or when
    the pairwise block is small; what is left is always a superset of the hull vertices.
    """
    unchanged = 0
    for step in range(2 * _HULL_ROUNDS):
        width = y.shape[1]
        if width < 3 or unchanged == 2 or y.shape[0] * width * width <= _THIN_ABOVE // 4:
            break
        middle = torch.arange(1, width - 1, device=y.device)
        cross = (x[:, 1:-1] - x[:, :-2]) * (y[:, 2:] - y[:, :-2]) - (x[:, 2:] - x[:, :-2]) * (y[:, 1:-1] - y[:, :-2])
        inner = cross >= 0 if left_side else cross <= 0  # cross < 0: strictly left of the segment
        judged = ((middle & 1) == (step & 1)) & (middle + 1 < counts[:, None])
        keep = torch.arange(width, device=y.device) < counts[:, None]
        keep[:, 1:-1] &= ~(inner & judged)
        new_counts, (y, x) = _compact(keep, y, x)
        unchanged = unchanged + 1 if torch.equal(new_counts, counts) else 0
        counts = new_counts
    return counts, y, x


def _max_pairwise_distance(counts: torch.Tensor, y: torch.Tensor, x: torch.Tensor, scale: torch.Tensor):
    """Largest distance between two of each region's points (integer ``[B, K]`` y/x, times ``scale [B, 2]``).

    With square pixels (and regions below ~1400 pixels) squared distances in half-pixel units are integers below
    2^24, exact in float32 (half the memory traffic of float64); otherwise they are computed in float64.
    """
    small = max(int(y.max()), int(x.max())) < _FLOAT32_EXACT if y.numel() else True
    exact_float32 = small and bool((scale[:, 0] == scale[:, 1]).all())
    if exact_float32:
        yf, xf = y.to(torch.float32), x.to(torch.float32)
    else:
        yf, xf = y.to(torch.float64) * scale[:, :1], x.to(torch.float64) * scale[:, 1:]
    width = y.shape[1]
    chunk = max(1, _PAIRWISE_BLOCK // (width * width))
    best = []
    for yb, xb in zip(yf.split(chunk), xf.split(chunk)):  # bounded memory: chunk * K^2 entries at a time
        dy = yb[:, :, None] - yb[:, None, :]
        dx = xb[:, :, None] - xb[:, None, :]
        best.append(torch.addcmul(dy.square_(), dx, dx).flatten(1).amax(1))
    squared = torch.cat(best).to(torch.float64) if best else scale.new_zeros(0)
    if exact_float32:
        squared = squared * scale[:, 0] ** 2
    return torch.where(counts > 0, torch.sqrt(squared), math.nan)


def _diameter(image, y, x, n_regions: int, n_rows: int, scale: torch.Tensor) -> torch.Tensor:
    """Maximum distance between contour vertices: all pairs of hull-vertex candidates, per region."""
    (n_left, y_left, x_left), (n_right, y_right, x_right) = _chains(image, y, x, n_regions, n_rows)
    if n_regions * (y_left.shape[1] + y_right.shape[1]) ** 2 > _THIN_ABOVE:  # thin out large candidate sets first
        n_left, y_left, x_left = _convex_chain(n_left, y_left, x_left, left_side=True)
        n_right, y_right, x_right = _convex_chain(n_right, y_right, x_right, left_side=False)
    keep = torch.cat(
        [torch.arange(y_left.shape[1], device=y.device) < n_left[:, None],
         torch.arange(y_right.shape[1], device=y.device) < n_right[:, None]], 1
    )
    counts, (yc, xc) = _compact(keep, torch.cat([y_left, y_right], 1), torch.cat([x_left, x_right], 1))
    return _max_pairwise_distance(counts, yc, xc, scale)


class Shape2D(FeatureClass):
    """PyRadiomics ``shape2D``: MeshSurface, PixelSurface, Perimeter, PerimeterSurfaceRatio, Sphericity,
    MaximumDiameter, MajorAxisLength, MinorAxisLength, Elongation (see the module docstring for the method and the
    degenerate-region policy). Spacing is ``RegionBatch.spacing`` (row, col), as PyRadiomics' pixel spacing."""

    name = "shape2D"

    def __init__(self, batch: RegionBatch):
        super().__init__(batch)
        mask = batch.mask
        if mask.dim() != 3 or mask.dtype != torch.bool:
            raise ValueError(f"shape2D needs a bool [B, H, W] mask, got {tuple(mask.shape)} {mask.dtype}")
        n_regions, height, width = mask.shape
        spacing = batch.spacing.to(device=mask.device, dtype=torch.float64)
        if spacing.shape != (n_regions, 2):
            raise ValueError(f"spacing must be [B, 2] = [{n_regions}, 2], got {tuple(spacing.shape)}")
        self._sy, self._sx = spacing[:, 0], spacing[:, 1]
        counted = precomputed(batch, "shape2D")  # the CPU fast path's kernel, when it ran
        if counted is not None:
            self._from_counts(*counted, spacing)
            return

        padded = _padded(mask)
        row = width + 2
        bounds = torch.arange(n_regions + 1, device=mask.device) * ((height + 2) * row)
        # Crossing k: between padded pixels k and k + row (vertical), or k and k + 1 (horizontal).
        vertical = flatnonzero(padded[row:] != padded[:-row])
        horizontal = flatnonzero(padded[1:] != padded[:-1])
        n_vertical, n_diagonal, area_correction = self._mesh(padded, vertical, bounds)
        self._moments(horizontal, row, height + 2, bounds)

        empty = self._n_pixels == 0
        sy, sx = self._sy, self._sx
        n_horizontal = self._n_runs * 2
        straight_x, straight_y = n_vertical - n_diagonal / 2, n_horizontal - n_diagonal / 2
        perimeter = sx * straight_x + sy * straight_y + n_diagonal * torch.hypot(sx, sy) / 2
        self._perimeter = torch.where(empty, math.nan, perimeter)
        self._area = torch.where(empty, math.nan, (self._n_pixels + area_correction) * sy * sx)

        # Contour vertices in half-pixel units: the vertical crossing below padded pixel (r, c) is at
        # (2r + 1, 2c), the horizontal one right of it at (2r, 2c + 1); r counts rows over the whole batch.
        v_row, h_row = vertical // row, horizontal // row
        diameter = _diameter(
            torch.cat([v_row, h_row]) // (height + 2),
            torch.cat([2 * v_row + 1, 2 * h_row]) % (2 * (height + 2)),
            torch.cat([2 * (vertical - v_row * row), 2 * (horizontal - h_row * row) + 1]),
            n_regions,
            2 * (height + 2),
            spacing / 2,
        )
        self._diameter = torch.where(empty, math.nan, diameter)

    def _from_counts(self, stats: torch.Tensor, hull_n: torch.Tensor, hull_y: torch.Tensor, hull_x: torch.Tensor,
                     spacing: torch.Tensor) -> None:
        """The same features from the CPU kernel's integers (``radclr.radiomics.kernels.shape2d``): per-region
        counts and moment sums, and the convex hull of the contour vertices (which holds the diameter's ends)."""
        n, n_vertical, n_horizontal, n_diagonal, three_minus_one, n_saddles = stats[:, :6].to(torch.float64).unbind(1)
        area_correction = three_minus_one / 8 - n_saddles / 4
        self._n_pixels = n
        self._n_runs = n_horizontal / 2
        self._eigen(*stats[:, [0, 6, 7, 8, 9, 10]].unbind(1))
        empty = n == 0
        sy, sx = self._sy, self._sx
        straight_x, straight_y = n_vertical - n_diagonal / 2, n_horizontal - n_diagonal / 2
        perimeter = sx * straight_x + sy * straight_y + n_diagonal * torch.hypot(sx, sy) / 2
        self._perimeter = torch.where(empty, math.nan, perimeter)
        self._area = torch.where(empty, math.nan, (n + area_correction) * sy * sx)
        self._diameter = torch.where(empty, math.nan, _max_pairwise_distance(hull_n, hull_y, hull_x, spacing / 2))

    @staticmethod
    def _mesh(padded: torch.Tensor, vertical: torch.Tensor, bounds: torch.Tensor):
        """(N_v, n_d, (n_3 - n_1) / 8 - n_saddle / 4) per region from the vertical crossings (module docstring)."""
        # Two vertical crossings side by side: the cell between them has both vertical edges crossed
        # (the empty border columns keep k and k + 1 in one row).
        pair = torch.zeros_like(vertical, dtype=torch.bool)
        pair[:-1] = vertical[1:] == vertical[:-1] + 1
        lone_right = ~pair
        lone_left = torch.ones_like(pair)
        lone_left[1:] = lone_right[:-1]
        # The cell right of a lone crossing has 3 corners in the mask iff its right column is in (else 1); the
        # cell left of it likewise with its left column. A pair's cell is a saddle iff its top corners differ.
        right_in = padded.index_select(0, vertical + 1)
        left_in = padded.index_select(0, vertical - 1)
        saddle = pair & (padded.index_select(0, vertical) != right_in)
        per_point = torch.stack(
            [torch.ones_like(pair), pair, saddle, right_in & lone_right, lone_right, left_in & lone_left, lone_left], 1
        )
        sums = _segment_sums(per_point.to(torch.int64), vertical, bounds).to(torch.float64)
        n_vertical, n_pairs, n_saddles, right_three, right_lone, left_three, left_lone = sums.unbind(1)
        three_minus_one = 2 * (right_three + left_three) - right_lone - left_lone  # (n_3 - n_1) over both sides
        n_diagonal = 2 * (n_vertical - n_pairs + n_saddles)
        return n_vertical, n_diagonal, three_minus_one / 8 - n_saddles / 4

    def _moments(self, horizontal: torch.Tensor, row: int, rows_per_image: int, bounds: torch.Tensor) -> None:
        """Pixel count and covariance eigenvalues of pixel-centre coordinates, from the row runs (exact int64).

        Sorted horizontal crossings alternate entering / leaving the mask along each row, so consecutive pairs are
        the runs: pixels ``start..end`` of one padded row. Sums of 1, x, x^2 over a run are closed forms.
        """
        runs = horizontal.view(-1, 2)
        first = runs[:, 0].contiguous()
        r = first // row
        start = first - r * row + 1  # padded column of the run's first pixel
        end = runs[:, 1] - r * row
        y = r % rows_per_image
        count = end - start + 1
        sum_x = (start + end) * count // 2
        sum_x2 = (end * (end + 1) * (2 * end + 1) - (start - 1) * start * (2 * start - 1)) // 6
        terms = torch.stack([torch.ones_like(count), count, y * count, y * y * count, sum_x, sum_x2, y * sum_x], 1)
        n_runs, n, s_y, s_yy, s_x, s_xx, s_xy = _segment_sums(terms, first, bounds).unbind(1)
        self._n_pixels = n.to(torch.float64)
        self._n_runs = n_runs.to(torch.float64)
        self._eigen(n, s_y, s_yy, s_x, s_xx, s_xy)

    def _eigen(self, n, s_y, s_yy, s_x, s_xx, s_xy) -> None:
        """Eigenvalues of the pixel-centre covariance from the int64 sums of 1, y, y^2, x, x^2, xy."""
        # Centred moments n^2 * cov (the padding shifts coordinates; central moments do not see it). int64 is
        # exact while n * sum(y^2) < 2^63 (regions up to ~1400^2 pixels); beyond that, float64.
        if n.numel() and float(n.max()) * float(torch.maximum(s_yy, s_xx).max()) >= 2.0**62:
            n, s_y, s_yy, s_x, s_xx, s_xy = (t.to(torch.float64) for t in (n, s_y, s_yy, s_x, s_xx, s_xy))
        sy, sx = self._sy, self._sx
        n2 = (n * n).to(torch.float64)
        c_yy = (n * s_yy - s_y * s_y).to(torch.float64) / n2 * sy * sy
        c_xx = (n * s_xx - s_x * s_x).to(torch.float64) / n2 * sx * sx
        c_xy = (n * s_xy - s_y * s_x).to(torch.float64) / n2 * sy * sx
        half_trace = (c_yy + c_xx) / 2
        radius = torch.hypot((c_yy - c_xx) / 2, c_xy)
        eigen = torch.stack([half_trace - radius, half_trace + radius], 1)
        eigen = torch.where((eigen < 0) & (eigen > -_EIGEN_ROUNDING), torch.zeros_like(eigen), eigen)
        self._eigen_minor, self._eigen_major = eigen.unbind(1)

    @feature
    def MeshSurface(self) -> torch.Tensor:
        """Area enclosed by the marching-squares contour, A (mm^2)."""
        return self._area

    @feature
    def PixelSurface(self) -> torch.Tensor:
        """N_p times the area of one pixel."""
        return torch.where(self._n_pixels == 0, math.nan, self._n_pixels * self._sy * self._sx)

    @feature
    def Perimeter(self) -> torch.Tensor:
        """P: total length of the contour segments."""
        return self._perimeter

    @feature
    def PerimeterSurfaceRatio(self) -> torch.Tensor:
        """P / A."""
        return self._perimeter / self._area

    @feature
    def Sphericity(self) -> torch.Tensor:
        """2 sqrt(pi A) / P: perimeter of the circle of equal area over the perimeter (1 for a circle)."""
        return 2 * torch.sqrt(math.pi * self._area) / self._perimeter

    @feature(deprecated=True)
    def SphericalDisproportion(self) -> torch.Tensor:
        """P / (2 sqrt(pi A)) = 1 / Sphericity (deprecated in PyRadiomics, not in the default output)."""
        return self._perimeter / (2 * torch.sqrt(math.pi * self._area))

    @feature
    def MaximumDiameter(self) -> torch.Tensor:
        """Largest distance between two contour vertices."""
        return self._diameter

    @feature
    def MajorAxisLength(self) -> torch.Tensor:
        """4 sqrt(lambda_major), lambda_major the largest eigenvalue of the pixel-centre coordinate covariance."""
        return _axis(self._eigen_major)

    @feature
    def MinorAxisLength(self) -> torch.Tensor:
        """4 sqrt(lambda_minor)."""
        return _axis(self._eigen_minor)

    @feature
    def Elongation(self) -> torch.Tensor:
        """sqrt(lambda_minor / lambda_major) (the inverse of the usual elongation; 1 = not elongated)."""
        bad = (self._eigen_minor < 0) | (self._eigen_major < 0)
        return torch.where(bad, math.nan, torch.sqrt(self._eigen_minor / self._eigen_major))


def _axis(eigenvalue: torch.Tensor) -> torch.Tensor:
    return torch.where(eigenvalue < 0, math.nan, 4 * torch.sqrt(eigenvalue.clamp(min=0)))
