"""The 8-neighbourhood pass: GLDM dependence counts and NGTDM tone differences (PyRadiomics
``_cmatrices.calculate_gldm`` and ``calculate_ngtdm`` in 2-D, distance 1), from one read of each pixel's
neighbours.

* GLDM: a neighbour *depends* on a pixel when both are inside the mask and their gray levels differ by at most
  ``alpha`` (``gldm_a``); ``dep[b, i - 1, d]`` counts the region pixels of level i with d dependent neighbours
  (d = 0..8; PyRadiomics' column j = d + 1).
* NGTDM: for a region pixel of level i with c neighbours inside the mask whose levels add up to T, PyRadiomics
  adds ``|i - T / c|`` to ``s_i`` (nothing when c = 0). ``tone[b, i - 1, c]`` sums the exact integers ``|i c - T|``
  by (level, c); the feature class divides by c once per cell (``ngtdm.tone_differences``): the same sum with
  fewer rounding steps.

Each row is done in two loops: the neighbour comparisons and sums for every pixel of the row (no branches, so
the compiler vectorises them), then the counting, into two alternating copies of the tables (consecutive pixels
that add to the same cell do not wait for each other's store).
"""

from __future__ import annotations

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["neighbourhood_counts"]


@njit
def neighbourhood_counts(start, stop, code, height, width, alpha, dep, tone):
    """``dep int32 [B, G, 9]`` (GLDM) and ``tone int64 [B, G, 9]`` (NGTDM) of the padded gray-level maps."""
    Wp = code.shape[2]
    G = dep.shape[1]
    n_dep = np.zeros(Wp, dtype=np.int32)
    n_in = np.zeros(Wp, dtype=np.int32)
    diff = np.zeros(Wp, dtype=np.int32)
    dep2 = np.zeros((2, G, 9), dtype=np.int32)
    tone2 = np.zeros((2, G, 9), dtype=np.int64)
    a = np.int32(np.floor(alpha))  # levels are integers: |i - j| <= alpha  <=>  |i - j| <= floor(alpha)
    for b in range(start, stop):
        w = width[b]
        dep2[:] = 0
        tone2[:] = 0
        for r in range(1, height[b] + 1):
            up = code[b, r - 1]
            mid = code[b, r]
            dn = code[b, r + 1]
            for c in range(1, w + 1):
                i = np.int32(mid[c])
                a0 = np.int32(up[c - 1])
                a1 = np.int32(up[c])
                a2 = np.int32(up[c + 1])
                a3 = np.int32(mid[c - 1])
                a4 = np.int32(mid[c + 1])
                a5 = np.int32(dn[c - 1])
                a6 = np.int32(dn[c])
                a7 = np.int32(dn[c + 1])
                nn = (np.int32(a0 != 0) + np.int32(a1 != 0) + np.int32(a2 != 0) + np.int32(a3 != 0)
                      + np.int32(a4 != 0) + np.int32(a5 != 0) + np.int32(a6 != 0) + np.int32(a7 != 0))
                n_in[c] = nn
                diff[c] = abs(i * nn - (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7))
            if a == 0:  # equal level (outside pixels have level 0, the centre >= 1 when it counts)
                for c in range(1, w + 1):
                    i = mid[c]
                    n_dep[c] = (np.int32(up[c - 1] == i) + np.int32(up[c] == i) + np.int32(up[c + 1] == i)
                                + np.int32(mid[c - 1] == i) + np.int32(mid[c + 1] == i) + np.int32(dn[c - 1] == i)
                                + np.int32(dn[c] == i) + np.int32(dn[c + 1] == i))
            else:
                for c in range(1, w + 1):
                    i = np.int32(mid[c])
                    k = 0
                    for x in (up[c - 1], up[c], up[c + 1], mid[c - 1], mid[c + 1], dn[c - 1], dn[c], dn[c + 1]):
                        k += np.int32((x != 0) & (abs(np.int32(x) - i) <= a))
                    n_dep[c] = k
            for c in range(1, w + 1):
                i = mid[c]
                if i != 0:
                    k = c & 1
                    dep2[k, i - 1, n_dep[c]] += 1
                    tone2[k, i - 1, n_in[c]] += diff[c]
        for g in range(G):
            for j in range(9):
                dep[b, g, j] = dep2[0, g, j] + dep2[1, g, j]
                tone[b, g, j] = tone2[0, g, j] + tone2[1, g, j]
