"""Zones of the gray level size zone matrix (PyRadiomics ``_cmatrices.calculate_glszm`` in 2-D).

A zone is a maximal set of region pixels of one gray level connected through their 8 neighbours (PyRadiomics
grows zones over every offset of the 2-D neighbourhood, inside the mask only). The kernel works on row runs
(maximal horizontal stretches of one level, about 8 pixels each on NIH regions): runs of consecutive rows with
the same level that touch -- column ranges overlapping once widened by one pixel, which is 8-connectivity -- are
joined with union-find (smaller run id wins, path halving), and a zone's size is the summed length of its runs.
It lists every zone's gray level and size; ``glszm.GLSZM`` computes the features from that list exactly as from
the torch engine's :func:`radclr.ops.component_stats`.
"""

from __future__ import annotations

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["zones"]


@njit
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]  # path halving
        p = parent[p]
    return p


@njit
def zones(start, stop, code, height, width, offset, level, size, n_zones):
    """Zones of regions ``start:stop``: region b's ``n_zones[b]`` zones are written at ``level[offset[b]:]``
    (gray level, uint8) and ``size[offset[b]:]`` (pixels, int32); ``offset`` leaves room for ``h_b * w_b``."""
    Hp, Wp = code.shape[1], code.shape[2]
    cap = (Hp - 2) * (Wp - 2)
    run_first = np.empty(cap, dtype=np.int32)  # first column of each run
    run_last = np.empty(cap, dtype=np.int32)
    run_level = np.empty(cap, dtype=np.uint8)
    parent = np.empty(cap, dtype=np.int32)
    total = np.empty(cap, dtype=np.int32)
    row_start = np.empty(Hp, dtype=np.int32)  # first run of each row
    for b in range(start, stop):
        h, w = height[b], width[b]
        n = 0
        prev_lo = 0  # runs of the previous row: prev_lo .. prev_hi - 1
        prev_hi = 0
        for r in range(1, h + 1):
            row_start[r] = n
            c = 1
            while c <= w:
                i = code[b, r, c]
                if i == 0:
                    c += 1
                    continue
                first = c
                while code[b, r, c + 1] == i:
                    c += 1
                run_first[n] = first
                run_last[n] = c
                run_level[n] = i
                parent[n] = n
                # join the runs of the previous row that touch this one (columns first-1 .. c+1) with its level
                root = n
                while prev_lo < prev_hi and run_last[prev_lo] < first - 1:
                    prev_lo += 1  # ends left of this run, so of every later run of the row too
                k = prev_lo
                while k < prev_hi and run_first[k] <= c + 1:
                    if run_level[k] == i:
                        rk = _find(parent, k)
                        rn = _find(parent, root)
                        if rk < rn:
                            parent[rn] = rk
                            root = rk
                        elif rn < rk:
                            parent[rk] = rn
                            root = rn
                    k += 1
                n += 1
                c += 1
            prev_lo = row_start[r]
            prev_hi = n
        for k in range(n):
            total[k] = 0
        for k in range(n):
            total[_find(parent, k)] += run_last[k] - run_first[k] + 1
        z = offset[b]
        for k in range(n):
            if parent[k] == k:
                level[z] = run_level[k]
                size[z] = total[k]
                z += 1
        n_zones[b] = z - offset[b]
