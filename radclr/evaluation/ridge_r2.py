"""How much of one representation another explains: cross-validated R^2 of a ridge regression.

Used to watch what the radiomics view does to the image embedding during training (BYOP diagnostics): with
X = standardised radiomics of a region and Y = the image embedding, R^2 near 1 means the embedding carries little
beyond the radiomics, near 0 means the two views share little.
"""

from __future__ import annotations

import numpy as np


def cross_validated_r2(x, y, *, n_splits: int = 5, alpha: float = 1.0, seed: int = 0) -> float:
    """Out-of-fold R^2 (variance of all columns of ``y`` explained, pooled) of ridge regression ``x -> y``.

    ``x`` ``[N, P]``, ``y`` ``[N, D]``; columns of ``x`` are standardised inside each fold on its training rows.
    Returns NaN for fewer than ``2 * n_splits`` rows or a constant ``y``.
    """
    from sklearn.linear_model import Ridge  # slow to import; only used here
    from sklearn.model_selection import KFold  # slow to import; only used here

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be [N, P] and y [N, D] with the same N, got {x.shape} and {y.shape}")
    if len(x) < 2 * n_splits or float(y.var(axis=0).sum()) == 0.0:
        return float("nan")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    pred = np.zeros_like(y)
    for train, test in KFold(n_splits, shuffle=True, random_state=seed).split(x):
        mu, sd = x[train].mean(0), x[train].std(0)
        sd[sd == 0] = 1.0
        model = Ridge(alpha=alpha).fit((x[train] - mu) / sd, y[train])
        pred[test] = model.predict((x[test] - mu) / sd)
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean(0)) ** 2).sum())
    return 1.0 - ss_res / ss_tot
