"""Gray level co-occurrence counts (PyRadiomics ``_cmatrices.calculate_glcm`` in 2-D, distance 1).

``P[b, a, i - 1, j - 1]`` counts the pixel pairs (p, p + offset_a) of region b with gray levels i at p and j at
p + offset_a, both inside the mask, for the four offsets of ``radclr.radiomics.neighbours.angles_2d([1])`` in
that order -- (1, 1), (1, 0), (1, -1), (0, 1) as (row, column) -- i.e. PyRadiomics' 135°, 90°, 45°, 0° angles.
Raw, asymmetric counts: symmetrisation and normalisation are done by the feature class (``glcm._Coefficients``).
"""

from __future__ import annotations

from radclr.radiomics.kernels import njit

__all__ = ["glcm_counts"]


@njit
def glcm_counts(start, stop, code, height, width, out):
    """Co-occurrence counts ``out int32 [B, 4, G, G]`` of the padded gray-level maps ``code`` (module docstring
    of :mod:`radclr.radiomics.kernels.binning`)."""
    for b in range(start, stop):
        for r in range(1, height[b] + 1):
            for c in range(1, width[b] + 1):
                i = code[b, r, c]
                if i == 0:
                    continue
                i -= 1
                j = code[b, r + 1, c + 1]
                if j:
                    out[b, 0, i, j - 1] += 1
                j = code[b, r + 1, c]
                if j:
                    out[b, 1, i, j - 1] += 1
                j = code[b, r + 1, c - 1]
                if j:
                    out[b, 2, i, j - 1] += 1
                j = code[b, r, c + 1]
                if j:
                    out[b, 3, i, j - 1] += 1
