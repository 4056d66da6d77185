"""Gray level run-length counts (PyRadiomics ``_cmatrices.calculate_glrlm`` in 2-D).

A run is a maximal stretch of consecutive region pixels of one gray level along an angle; a pixel outside the
mask ends it. ``P[b, a, i, j - 1]`` counts the runs of level i and length j of region b along the four
directions of ``angles_2d([1])`` -- (1, 1), (1, 0), (1, -1), (0, 1) as (row, column) -- a line and its opposite
give the same runs. ``multi[b, a]`` is PyRadiomics' test for keeping the angle: some line along it holds at least
two region pixels (not necessarily adjacent); without one PyRadiomics clears the angle's matrix and drops it.

One raster pass serves the four directions without branches: every pixel's run length so far is its
predecessor's plus one when the predecessor has the same level (else 1), kept in two row buffers per direction;
a run is counted at its last pixel (the successor differs). Pixels outside the mask are counted too, in level
row 0 of ``P``, which the caller drops -- cheaper than a mispredicted branch per pixel.
"""

from __future__ import annotations

import numpy as np

from radclr.radiomics.kernels import njit

__all__ = ["run_length_counts"]


@njit
def run_length_counts(start, stop, code, height, width, out, multi):
    """Run-length counts ``out int32 [B, 4, G + 1, Nr]`` (level row 0 = outside, to drop; Nr >= the longest
    line) and ``multi bool [B, 4]``."""
    Wp = code.shape[2]
    prev = np.zeros((3, Wp), dtype=np.int32)  # run length at the previous row, for (1, 1), (1, 0), (1, -1)
    cur = np.zeros((3, Wp), dtype=np.int32)
    for b in range(start, stop):
        h, w = height[b], width[b]
        prev[:, :] = 0
        cur[:, :] = 0
        longest = np.zeros(4, dtype=np.int32)
        for r in range(1, h + 1):
            left = 0
            for c in range(1, w + 1):
                i = code[b, r, c]
                # (1, 1): predecessor (r - 1, c - 1), successor (r + 1, c + 1)
                n0 = (code[b, r - 1, c - 1] == i) * prev[0, c - 1] + 1
                out[b, 0, i, n0 - 1] += code[b, r + 1, c + 1] != i
                cur[0, c] = n0
                # (1, 0)
                n1 = (code[b, r - 1, c] == i) * prev[1, c] + 1
                out[b, 1, i, n1 - 1] += code[b, r + 1, c] != i
                cur[1, c] = n1
                # (1, -1)
                n2 = (code[b, r - 1, c + 1] == i) * prev[2, c + 1] + 1
                out[b, 2, i, n2 - 1] += code[b, r + 1, c - 1] != i
                cur[2, c] = n2
                # (0, 1)
                n3 = (code[b, r, c - 1] == i) * left + 1
                out[b, 3, i, n3 - 1] += code[b, r, c + 1] != i
                left = n3
                if i != 0:
                    longest[0] = max(longest[0], n0)
                    longest[1] = max(longest[1], n1)
                    longest[2] = max(longest[2], n2)
                    longest[3] = max(longest[3], n3)
            prev, cur = cur, prev
        for a in range(4):
            if longest[a] >= 2:
                multi[b, a] = True
            else:  # no run of 2+ pixels (rare): count region pixels per line along the angle
                dy, dx = (1, 1) if a == 0 else (1, 0) if a == 1 else (1, -1) if a == 2 else (0, 1)
                multi[b, a] = _line_with_two(code, b, h, w, dy, dx)


@njit
def _line_with_two(code, b, h, w, dy, dx):
    """True when a line along (dy, dx) holds two region pixels of region b."""
    if dy == 0:  # rows
        for r in range(1, h + 1):
            k = 0
            for c in range(1, w + 1):
                k += code[b, r, c] != 0
            if k >= 2:
                return True
        return False
    if dx == 0:  # columns
        for c in range(1, w + 1):
            k = 0
            for r in range(1, h + 1):
                k += code[b, r, c] != 0
            if k >= 2:
                return True
        return False
    per_line = np.zeros(h + w, dtype=np.int32)  # diagonals: c - r (dx = 1) or c + r (dx = -1), shifted to >= 0
    for r in range(1, h + 1):
        for c in range(1, w + 1):
            if code[b, r, c] != 0:
                k = c - r + h if dx == 1 else c + r - 2
                per_line[k] += 1
                if per_line[k] >= 2:
                    return True
    return False


# order of ``run_length_features``' columns (PyRadiomics feature names)
FEATURES = (
    "ShortRunEmphasis", "LongRunEmphasis", "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized",
    "RunLengthNonUniformity", "RunLengthNonUniformityNormalized", "RunPercentage", "GrayLevelVariance",
    "RunVariance", "RunEntropy", "LowGrayLevelRunEmphasis", "HighGrayLevelRunEmphasis",
    "ShortRunLowGrayLevelEmphasis", "ShortRunHighGrayLevelEmphasis", "LongRunLowGrayLevelEmphasis",
    "LongRunHighGrayLevelEmphasis",
)
_EPS = 2.220446049250313e-16  # numpy.spacing(1), PyRadiomics' epsilon


@njit
def run_length_features(start, stop, P, multi, out):
    """The 16 GLRLM features of each region from its counts ``P int32 [B, 4, G + 1, Nr]`` (level row 0 ignored;
    level i = row i), as PyRadiomics computes them (``glrlm.py``): per angle, over the runs ``N_r``, run-length
    marginal ``p_r(j)``, gray-level marginal ``p_g(i)``, then ``numpy.nanmean`` over the angles kept (``multi``
    and at least one run). ``out float64 [B, 16]`` in the order of ``FEATURES``; NaN without any angle.

    The same formulas as ``radclr.radiomics.glrlm.GLRLM`` (the torch reference, which the tests compare with),
    computed here over the non-zero cells only: the matrix is mostly empty, which the dense tensor formulas
    cannot skip.
    """
    G1, Nr = P.shape[2], P.shape[3]
    pg = np.zeros(G1, dtype=np.float64)
    pr = np.zeros(Nr, dtype=np.float64)
    values = np.zeros(16, dtype=np.float64)
    total = np.zeros(16, dtype=np.float64)
    kept = np.zeros(16, dtype=np.int64)
    for b in range(start, stop):
        total[:] = 0.0
        kept[:] = 0
        for a in range(4):
            if not multi[b, a]:
                continue
            pg[:] = 0.0
            pr[:] = 0.0
            n_runs = 0.0
            srlgle = srhgle = lrlgle = lrhgle = 0.0
            last = 0
            for g in range(1, G1):
                i2 = float(g) * float(g)
                for j in range(Nr):
                    k = P[b, a, g, j]
                    if k == 0:
                        continue
                    x = float(k)
                    jj = float(j + 1) * float(j + 1)
                    pg[g] += x
                    pr[j] += x
                    n_runs += x
                    srlgle += x / (i2 * jj)
                    srhgle += x * i2 / jj
                    lrlgle += x * jj / i2
                    lrhgle += x * i2 * jj
                    if j + 1 > last:
                        last = j + 1
            if n_runs == 0.0:
                continue
            nr = n_runs
            sre = lre = rln = n_p = mu_j = 0.0
            for j in range(last):
                jf = float(j + 1)
                sre += pr[j] / (jf * jf)
                lre += pr[j] * jf * jf
                rln += pr[j] * pr[j]
                n_p += pr[j] * jf
                mu_j += pr[j] / nr * jf
            rv = 0.0
            for j in range(last):
                d = float(j + 1) - mu_j
                rv += pr[j] / nr * d * d
            gln = lglre = hglre = mu_i = 0.0
            for g in range(1, G1):
                i2 = float(g) * float(g)
                gln += pg[g] * pg[g]
                lglre += pg[g] / i2
                hglre += pg[g] * i2
                mu_i += pg[g] / nr * float(g)
            glv = 0.0
            for g in range(1, G1):
                d = float(g) - mu_i
                glv += pg[g] / nr * d * d
            entropy = 0.0
            for g in range(1, G1):
                for j in range(last):
                    k = P[b, a, g, j]
                    if k != 0:
                        p = float(k) / nr
                        entropy -= p * np.log2(p + _EPS)
            values[0] = sre / nr
            values[1] = lre / nr
            values[2] = gln / nr
            values[3] = gln / (nr * nr)
            values[4] = rln / nr
            values[5] = rln / (nr * nr)
            values[6] = n_runs / n_p if n_p > 0 else n_runs
            values[7] = glv
            values[8] = rv
            values[9] = entropy
            values[10] = lglre / nr
            values[11] = hglre / nr
            values[12] = srlgle / nr
            values[13] = srhgle / nr
            values[14] = lrlgle / nr
            values[15] = lrhgle / nr
            for f in range(16):
                if not np.isnan(values[f]):
                    total[f] += values[f]
                    kept[f] += 1
        for f in range(16):
            out[b, f] = total[f] / kept[f] if kept[f] > 0 else np.nan
