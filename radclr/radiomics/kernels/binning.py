"""Intensity range and PyRadiomics discretisation of each region (``imageoperations.binImage``).

PyRadiomics bins the intensities inside the mask with ``numpy.digitize(x, edges)``, the edges coming from
``getBinEdges``: for ``binWidth`` w, ``arange(min - min % w, max + 2w, w)`` (a fixed first step, then the fill
step numpy's ``arange`` uses); for ``binCount`` n, ``histogram_bin_edges`` over ``[min, max]`` with the last edge
raised by 1. ``radclr.radiomics.discretize.BinEdges`` reproduces those edges per region; the kernels here apply
it pixel by pixel with the same float64 operations in the same order (no fast-math), so the gray level of every
pixel is the torch engine's -- and PyRadiomics' -- bit for bit.

Layout shared by every kernel of the fast path: region b's pixels ``(r, c)`` of its bounding box land at
``code[b, 1 + r, 1 + c]`` of a ``uint8 [B, h + 2, w + 2]`` map (h, w the largest box of the batch): the gray level
1..Ng inside the mask, 0 outside and on the one-pixel border, so neighbour look-ups need no bounds checks.
"""

from __future__ import annotations

import math

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["scan_range", "bin_integral", "bin_general"]


@njit
def scan_range(start, stop, images, masks, H, W, regions, top, left, height, width, out_min, out_max, flags):
    """Smallest/largest intensity inside each region's mask, and ``flags``: bit 0 = a NaN/inf pixel inside the
    mask (it counts as 0, as in the torch engine, and the region's row becomes NaN), bit 1 = a value inside the
    mask that is not an integer in [-2^30, 2^30] (the region cannot use the value-histogram route).
    ``images``/``masks``: the ``[N, H, W]`` arrays flattened (1-D views index fastest in numba)."""
    for b in range(start, stop):
        lo = math.inf
        hi = -math.inf
        flag = 0
        for r in range(height[b]):
            base = (regions[b] * H + top[b] + r) * W + left[b]
            for c in range(width[b]):
                if masks[base + c]:
                    v = np.float64(images[base + c])
                    if (v - v) != 0.0:  # NaN or +-inf
                        flag |= 1
                        v = 0.0
                    elif v != np.floor(v) or abs(v) > 1073741824.0:
                        flag |= 2
                    lo = min(lo, v)
                    hi = max(hi, v)
        out_min[b] = lo
        out_max[b] = hi
        flags[b] = flag


@njit
def bin_integral(start, stop, images, masks, H, W, regions, top, left, height, width, lowest, lut, code, hist):
    """Integer intensities: gray level through the region's lookup table ``lut[b, value - lowest]`` (built with
    ``BinEdges.bin`` on every possible value) and value histogram ``hist[b, value - lowest]`` (pixels per level
    follow from the two)."""
    for b in range(start, stop):
        lb = lut[b]
        hb = hist[b]
        for r in range(height[b]):
            base = (regions[b] * H + top[b] + r) * W + left[b]
            row = code[b, r + 1]
            for c in range(width[b]):
                if masks[base + c]:
                    k = np.int64(images[base + c]) - lowest
                    row[c + 1] = lb[k]
                    hb[k] += 1


@njit
def _bin_one(x, mode, p0, p1, p2, count):
    """``BinEdges.bin`` for one value: mode 0 = binWidth (p0 low, p1 edge 1, p2 fill step), mode 1 = binCount
    (p0 first edge, p1 last edge, p2 step)."""
    if mode == 0:
        k = math.floor((x - p0) / p2)
        if k < 0.0:
            k = 0.0
        e = p1 if k == 1.0 else p0 + k * p2
        if e > x:
            k -= 1.0
        kn = k + 1.0
        en = p1 if kn == 1.0 else p0 + kn * p2
        if en <= x:
            k = kn
    else:
        k = math.floor((x - p0) / p2)
        if k < 0.0:
            k = 0.0
        if k > count - 1.0:
            k = count - 1.0
        e = p1 + 1.0 if k >= count else k * p2 + p0
        if e > x:
            k -= 1.0
        kn = k + 1.0
        en = p1 + 1.0 if kn >= count else kn * p2 + p0
        if en <= x and kn <= count:
            k = kn
    return int(k) + 1


@njit
def bin_general(start, stop, images, masks, H, W, regions, top, left, height, width, mode, p0, p1, p2, count,
                n_levels, code, image, counts):
    """Any real intensities: gray level of each pixel from the region's edges (``_bin_one``), the float64 crop
    ``image[b, r, c]`` (0 outside the mask and for NaN/inf, as the torch engine) and pixels per level."""
    for b in range(start, stop):
        top_level = n_levels[b]
        for r in range(height[b]):
            base = (regions[b] * H + top[b] + r) * W + left[b]
            for c in range(width[b]):
                if masks[base + c]:
                    v = float(images[base + c])
                    if not math.isfinite(v):
                        v = 0.0
                    image[b, r, c] = v
                    g = _bin_one(v, mode, p0[b], p1[b], p2[b], count)
                    if g < 1:  # only for a NaN/inf pixel counted as 0 (the region's row is NaN anyway)
                        g = 1
                    elif g > top_level:
                        g = top_level
                    code[b, r + 1, c + 1] = g
                    counts[b, g - 1] += 1
