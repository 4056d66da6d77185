"""Gray level dependence counts (PyRadiomics ``_cmatrices.calculate_gldm`` in 2-D, distance 1).

A neighbour (8-neighbourhood) *depends* on a pixel when both are inside the mask and their gray levels differ by
at most ``alpha`` (``gldm_a``). ``P[b, i - 1, d]`` counts the region pixels of gray level i with d dependent
neighbours (d = 0..8; PyRadiomics' column j = d + 1).
"""

from __future__ import annotations

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["dependence_counts"]


@njit
def dependence_counts(start, stop, code, height, width, alpha, out):
    """Dependence counts ``out int32 [B, G, 9]`` of the padded gray-level maps ``code``."""
    for b in range(start, stop):
        for r in range(1, height[b] + 1):
            for c in range(1, width[b] + 1):
                i = code[b, r, c]
                if i == 0:
                    continue
                d = 0
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        if dy == 0 and dx == 0:
                            continue
                        j = code[b, r + dy, c + dx]
                        if alpha == 0:
                            d += j == i
                        elif j != 0 and abs(np.int64(j) - np.int64(i)) <= alpha:  # signed: codes are uint8
                            d += 1
                out[b, i - 1, d] += 1
