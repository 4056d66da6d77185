"""Radiomics panel: which radiomic features the learned image embedding agrees with most.

The contrastive methods (seed 000 §3 eqs. 1-3, seed 004 §2.2) pull an image's representation towards the
radiomics of its region; this panel asks, after training, *how much of each radiomic feature can be read off the
image representation linearly*. For every standardised radiomic feature r_p and image representations
Y [N, D]:

    R2_p = 1 - sum_i (r_ip - rhat_ip)^2 / sum_i (r_ip - mean(r_p))^2

where rhat are **out-of-fold** predictions of a ridge regression r_p ~ Y (k-fold cross-validation, patient-wise
when ``groups`` are given; Y standardised on each training fold; the ridge penalty chosen per feature inside the
training fold by efficient leave-one-out, ``RidgeCV(alpha_per_target=True)``), so R2 is an honest estimate of
linear predictability: ~1 when the feature is a linear function of the embedding, ~0 (or below) for unrelated
features. ``r_cv`` is the Pearson correlation between r_p and its out-of-fold prediction -- the correlation of
the embedding's best linear projection with the feature, the quantity the issue names.

Undefined features (documented policy): a feature with any NaN or a constant feature gets NaN with a
``reason`` and is left out of the ranking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from radclr.errors import DataError
from radclr.visualize.curves import FONT, new_figure, save_figure

__all__ = ["DEFAULT_ALPHAS", "radiomics_predictability", "radiomics_panel_figure", "radiomics_panel"]

DEFAULT_ALPHAS = tuple(10.0 ** k for k in range(-2, 5))


def _folds(n: int, groups, n_splits: int, seed: int):
    from sklearn.model_selection import GroupKFold, KFold  # slow to import; only used here

    if groups is None:
        return KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n))
    g = np.asarray(groups, dtype=object)
    if g.shape != (n,):
        raise ValueError(f"groups must hold one patient id per row ({n}), got shape {g.shape}")
    codes = pd.factorize(g)[0]
    if np.unique(codes).size < n_splits:
        raise DataError(f"{np.unique(codes).size} patients, fewer than n_splits={n_splits}")
    return GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n), groups=codes)


def radiomics_predictability(Y, R, names: Sequence[str], *, groups=None, n_splits: int = 5,
                             alphas: Sequence[float] = DEFAULT_ALPHAS, seed: int = 0) -> pd.DataFrame:
    """Cross-validated linear predictability of every radiomic feature from the image representation.

    ``Y [N, D]`` image representations, ``R [N, P]`` radiomic features (standardised or not: R2 and r do not
    depend on a feature's scale), ``names`` their P names (e.g. ``original_glcm_Contrast``). Returns a table
    sorted by ``r2_cv`` (best first) with columns ``feature, r2_cv, r_cv, alpha_median, reason``.
    """
    from sklearn.linear_model import RidgeCV  # slow to import; only used here
    from sklearn.pipeline import make_pipeline  # slow to import; only used here
    from sklearn.preprocessing import StandardScaler  # slow to import; only used here

    y = np.asarray(Y, dtype=np.float64)
    r = np.asarray(R, dtype=np.float64)
    if y.ndim != 2 or r.ndim != 2 or y.shape[0] != r.shape[0]:
        raise ValueError(f"Y must be [N, D] and R [N, P] with the same N, got {y.shape} and {r.shape}")
    names = [str(n) for n in names]
    if len(names) != r.shape[1]:
        raise ValueError(f"{len(names)} names for {r.shape[1]} radiomic features")
    if not np.all(np.isfinite(y)):
        raise DataError(f"Y has {int((~np.isfinite(y)).sum())} non-finite value(s)")
    if y.shape[0] < 2 * n_splits:
        raise DataError(f"{y.shape[0]} rows are too few for {n_splits}-fold cross-validation")
    reason = np.array([""] * r.shape[1], dtype=object)
    n_bad = (~np.isfinite(r)).sum(axis=0)
    reason[n_bad > 0] = [f"{k} non-finite value(s)" for k in n_bad[n_bad > 0]]
    sd = np.nanstd(np.where(np.isfinite(r), r, np.nan), axis=0)
    reason[(n_bad == 0) & ~(sd > 1e-12 * np.maximum(1.0, np.nanmax(np.abs(r), axis=0)))] = "constant feature"
    use = np.flatnonzero(reason == "")
    r2 = np.full(r.shape[1], np.nan)
    rc = np.full(r.shape[1], np.nan)
    alpha_med = np.full(r.shape[1], np.nan)
    if use.size:
        target = r[:, use]
        target = (target - target.mean(axis=0)) / target.std(axis=0)
        oof = np.zeros_like(target)
        chosen = []
        for train, test in _folds(y.shape[0], groups, n_splits, seed):
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=tuple(alphas), alpha_per_target=True))
            model.fit(y[train], target[train])
            oof[test] = model.predict(y[test]).reshape(len(test), -1)
            chosen.append(np.broadcast_to(model[-1].alpha_, (use.size,)))
        ss_res = np.sum((target - oof) ** 2, axis=0)
        ss_tot = np.sum((target - target.mean(axis=0)) ** 2, axis=0)
        r2[use] = 1.0 - ss_res / ss_tot
        oc = oof - oof.mean(axis=0)
        tc = target - target.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rc[use] = np.sum(oc * tc, axis=0) / np.sqrt(np.sum(oc ** 2, axis=0) * np.sum(tc ** 2, axis=0))
        alpha_med[use] = np.median(np.stack(chosen), axis=0)
    table = pd.DataFrame({"feature": names, "r2_cv": r2, "r_cv": rc, "alpha_median": alpha_med,
                          "reason": reason.astype(str)})
    return table.sort_values("r2_cv", ascending=False, na_position="last", kind="mergesort").reset_index(drop=True)


def _short(name: str) -> str:
    """``original_glcm_Contrast`` -> ``glcm_Contrast`` (the image-type prefix adds nothing on one image type)."""
    return name[len("original_"):] if name.startswith("original_") else name


def radiomics_panel_figure(table: pd.DataFrame, *, top_k: int = 15, metric: str = "r2_cv",
                           title: str | None = "Radiomic features the image embedding predicts best",
                           path: str | Path | None = None, dpi: int = 120):
    """Horizontal bar chart of the ``top_k`` features by ``metric`` (from :func:`radiomics_predictability`),
    best at the top, with the feature names and values. Returns the Figure (one axes); saved when ``path``."""
    if metric not in table:
        raise DataError(f"radiomics panel: no column {metric!r} in the table (columns: {list(table.columns)})")
    top = table[np.isfinite(table[metric].to_numpy(dtype=float))].nlargest(int(top_k), metric)
    if top.empty:
        raise DataError("radiomics panel: no feature has a defined value (all NaN or constant)")
    fig, (ax,) = new_figure(1, 1, panel_size=(7.0, 0.32 * len(top) + 1.4))
    vals = top[metric].to_numpy(dtype=float)[::-1]
    labels = [_short(n) for n in top["feature"].tolist()][::-1]
    pos = np.arange(len(vals))
    ax.barh(pos, vals, color=["C0" if v >= 0 else "C3" for v in vals], height=0.7)
    ax.set_yticks(pos, labels, fontsize=FONT["tick"])
    for p, v in zip(pos, vals):
        ax.text(max(v, 0.0), p, f" {v:.2f}", va="center", ha="left", fontsize=FONT["tick"])
    hi = max(1.0, float(np.max(vals)) * 1.15) if metric in ("r2_cv", "r_cv") else float(np.max(vals)) * 1.15
    ax.set_xlim(min(0.0, float(np.min(vals)) * 1.15), hi)
    label = {"r2_cv": "cross-validated R\u00b2 from the image embedding",
             "r_cv": "correlation with the embedding's cross-validated projection"}.get(metric, metric)
    ax.set_xlabel(label, fontsize=FONT["label"])
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path, dpi)


def radiomics_panel(Y, R, names: Sequence[str], *, top_k: int = 15, groups=None, n_splits: int = 5,
                    alphas: Sequence[float] = DEFAULT_ALPHAS, seed: int = 0, path: str | Path | None = None,
                    dpi: int = 120):
    """:func:`radiomics_predictability` + :func:`radiomics_panel_figure`: returns ``(figure, table)``."""
    table = radiomics_predictability(Y, R, names, groups=groups, n_splits=n_splits, alphas=alphas, seed=seed)
    return radiomics_panel_figure(table, top_k=top_k, path=path, dpi=dpi), table
