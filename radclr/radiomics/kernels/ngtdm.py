"""Neighbourhood gray tone differences (PyRadiomics ``_cmatrices.calculate_ngtdm`` in 2-D, distance 1).

For a region pixel of gray level i with c neighbours inside the mask (8-neighbourhood) whose gray levels add up
to T, PyRadiomics adds ``|i - T / c|`` to ``s_i`` (nothing when c = 0). radclr sums the exact integers
``|i c - T|`` by (level, c) -- ``out[b, i - 1, c]`` -- and the feature class divides by c once per cell
(``ngtdm.tone_differences``): the same sum with fewer rounding steps.
"""

from __future__ import annotations

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["tone_difference_sums"]


@njit
def tone_difference_sums(start, stop, code, height, width, out):
    """``out float64 [B, G, 9]``: sum of ``|i c - T|`` over the pixels of level i with c neighbours inside."""
    for b in range(start, stop):
        for r in range(1, height[b] + 1):
            for c in range(1, width[b] + 1):
                i = code[b, r, c]
                if i == 0:
                    continue
                total = np.int64(0)
                n = np.int64(0)
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        if dy == 0 and dx == 0:
                            continue
                        j = code[b, r + dy, c + dx]
                        if j != 0:
                            total += np.int64(j)
                            n += 1
                out[b, i - 1, n] += abs(np.int64(i) * n - total)  # signed: codes are uint8
