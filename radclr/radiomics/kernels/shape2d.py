"""Integer ingredients of PyRadiomics' 2-D shape features (``shape2D.py``, ``_cshape.calculate_coefficients2D``).

PyRadiomics runs marching squares over the 2 x 2 cells of the mask padded by one empty pixel: Perimeter, mesh
area and the maximum diameter come from the contour segments, the axis lengths from the covariance of the pixel
centres. ``radclr.radiomics.shape2d`` derives all of them from a few integers per region (see its docstring);
this kernel counts those integers in one pass over the padded level map (a pixel is in the mask when its level is
non-zero) and lists the convex hull of the contour vertices:

* ``stats[b]`` = (pixels, vertical crossings, horizontal crossings, diagonal segments, n_3 - n_1, saddles,
  sum y, sum y^2, sum x, sum x^2, sum x y) -- a crossing is the midpoint between two edge-adjacent pixels of which
  one is in the mask; n_k counts the cells with k corners in the mask; coordinates are padded (row, column);
* ``hull_y[b, :n]``, ``hull_x[b, :n]``: the convex-hull vertices of the crossings in half-pixel units (the vertical
  crossing below pixel (r, c) is at (2r + 1, 2c), the horizontal one right of it at (2r, 2c + 1)); the largest
  distance between two contour vertices is attained between two of them (Andrew's monotone chain over the
  extreme crossings of every half-row).

Each row is counted with branch-free loops the compiler vectorises.
"""

from __future__ import annotations

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["shape_counts", "N_STATS"]

N_STATS = 11


@njit
def _turn(chain_y, chain_x, k, by, bx):
    """Orientation of (chain[k - 2], chain[k - 1], b): the sign of the cross product (0: collinear)."""
    oy, ox, ay, ax = chain_y[k - 2], chain_x[k - 2], chain_y[k - 1], chain_x[k - 1]
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit
def shape_counts(start, stop, code, height, width, stats, hull_y, hull_x, hull_n):
    """Fill ``stats int64 [B, 11]``, ``hull_y/hull_x int64 [B, K]`` and ``hull_n int64 [B]`` (module docstring);
    hull slots past ``hull_n[b]`` repeat the first vertex."""
    Hp = code.shape[1]
    big = np.int64(1) << 40
    lo_x = np.empty(2 * Hp, dtype=np.int64)  # smallest / largest vertex x on each half-row
    hi_x = np.empty(2 * Hp, dtype=np.int64)
    py = np.empty(4 * Hp, dtype=np.int64)
    px = np.empty(4 * Hp, dtype=np.int64)
    chain_y = np.empty(4 * Hp + 2, dtype=np.int64)
    chain_x = np.empty(4 * Hp + 2, dtype=np.int64)
    for b in range(start, stop):
        h, w = height[b], width[b]
        n_pix = n_v = n_h = n_d = n31 = n_sad = 0
        s_y = s_yy = s_x = s_xx = s_xy = 0
        for y in range(2 * (h + 2)):
            lo_x[y] = big
            hi_x[y] = -1
        for r in range(h + 1):  # padded rows 0..h; row r + 1 below
            top = code[b, r]
            bot = code[b, r + 1]
            row_n = row_x = row_xx = 0
            v_lo = h_lo = big
            v_hi = h_hi = -1
            for c in range(w + 1):  # padded columns 0..w; column c + 1 right
                tl = np.int64(top[c] != 0)
                tr = np.int64(top[c + 1] != 0)
                bl = np.int64(bot[c] != 0)
                br = np.int64(bot[c + 1] != 0)
                # pixel (r, c) itself
                row_n += tl
                row_x += tl * c
                row_xx += tl * c * c
                # crossings: below (r, c) at (2r + 1, 2c), right of (r, c) at (2r, 2c + 1)
                dv = tl ^ bl
                dh = tl ^ tr
                n_v += dv
                n_h += dh
                v_lo = min(v_lo, 2 * c if dv else big)
                v_hi = max(v_hi, 2 * c if dv else -1)
                h_lo = min(h_lo, 2 * c + 1 if dh else big)
                h_hi = max(h_hi, 2 * c + 1 if dh else -1)
                # the cell with corners (r, c) .. (r + 1, c + 1)
                k = tl + tr + bl + br
                one = np.int64(k == 1)
                three = np.int64(k == 3)
                saddle = np.int64(k == 2) & np.int64(tl == br)
                n_d += one + three + 2 * saddle
                n31 += three - one
                n_sad += saddle
            n_pix += row_n
            s_y += r * row_n
            s_yy += r * r * row_n
            s_x += row_x
            s_xx += row_xx
            s_xy += r * row_x
            lo_x[2 * r + 1] = v_lo
            hi_x[2 * r + 1] = v_hi
            lo_x[2 * r] = h_lo
            hi_x[2 * r] = h_hi
        # row h + 1 (the bottom border) has no pixel and no horizontal crossing
        s = stats[b]
        s[0], s[1], s[2], s[3], s[4], s[5] = n_pix, n_v, n_h, n_d, n31, n_sad
        s[6], s[7], s[8], s[9], s[10] = s_y, s_yy, s_x, s_xx, s_xy
        # candidate points sorted by (y, x): the extreme crossings of every half-row
        m = 0
        for y in range(2 * (h + 1)):
            if hi_x[y] >= 0:
                py[m] = y
                px[m] = lo_x[y]
                m += 1
                if hi_x[y] != lo_x[y]:
                    py[m] = y
                    px[m] = hi_x[y]
                    m += 1
        # Andrew's monotone chain: lower then upper hull, collinear points dropped
        k = 0
        for j in range(m):
            while k >= 2 and _turn(chain_y, chain_x, k, py[j], px[j]) <= 0:
                k -= 1
            chain_y[k] = py[j]
            chain_x[k] = px[j]
            k += 1
        lower = k + 1
        for j in range(m - 2, -1, -1):
            while k >= lower and _turn(chain_y, chain_x, k, py[j], px[j]) <= 0:
                k -= 1
            chain_y[k] = py[j]
            chain_x[k] = px[j]
            k += 1
        n_hull = k - 1 if k > 1 else k  # the last point repeats the first
        K = hull_y.shape[1]
        n_hull = min(n_hull, K)
        hull_n[b] = n_hull
        for j in range(K):
            src = j if j < n_hull else 0
            hull_y[b, j] = chain_y[src]
            hull_x[b, j] = chain_x[src]
