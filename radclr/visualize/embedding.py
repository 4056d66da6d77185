"""t-SNE of learned features from several checkpoints (seed 003 §V-A, Fig. 3).

Seed 003 Fig. 3: "t-SNE visualization of the features extracted by models selected in different stages of the
pretraining process (10th, 25th, 50th and 100th epochs)", one panel per checkpoint, points coloured by class.

Procedure (the same for every panel, so the panels are comparable):

1. one subsample of at most ``max_points`` images (2000 by default), drawn once with ``seed`` -- stratified by
   class so a rare class keeps its share -- and used for every checkpoint;
2. features standardised (per dimension) and reduced by PCA to ``pca_dim`` (50) dimensions when wider, the usual
   preconditioning for t-SNE;
3. scikit-learn ``TSNE`` (2-D, ``init="pca"``, ``learning_rate="auto"``, ``perplexity`` capped below n/3) with a
   fixed ``random_state``.

t-SNE distances between clusters and cluster sizes carry no meaning; compare how mixed the classes are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from radclr.errors import DataError
from radclr.visualize.curves import FONT, new_figure, save_figure

__all__ = ["subsample_indices", "tsne_embedding", "tsne_figure"]


def subsample_indices(labels, max_points: int = 2000, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` rows, stratified by ``labels`` (each class keeps its share,
    at least one row per class); all rows when there are few enough."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    codes = pd.factorize(labels)[0]
    chosen = []
    classes = np.unique(codes)
    for c in classes:
        rows = np.flatnonzero(codes == c)
        k = max(1, int(round(max_points * rows.size / n)))
        chosen.append(rng.choice(rows, size=min(k, rows.size), replace=False))
    idx = np.concatenate(chosen)
    if idx.size > max_points:  # rounding overshoot: drop at random
        idx = rng.choice(idx, size=max_points, replace=False)
    return np.sort(idx)


def tsne_embedding(features, *, pca_dim: int = 50, perplexity: float = 30.0, seed: int = 0,
                   max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE coordinates ``[n, 2]`` of ``features [n, D]`` (standardise, PCA to ``pca_dim`` when D is
    larger, TSNE with ``random_state=seed``). Deterministic for a seed."""
    from sklearn.decomposition import PCA  # slow to import; only used here
    from sklearn.manifold import TSNE  # slow to import; only used here

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {x.shape}")
    if x.shape[0] < 5:
        raise DataError(f"t-SNE needs at least 5 points, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"features have {int((~np.isfinite(x)).sum())} non-finite value(s)")
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if x.shape[1] > pca_dim:
        x = PCA(n_components=min(pca_dim, x.shape[0]), random_state=seed, svd_solver="full").fit_transform(x)
    perp = float(min(perplexity, max(2.0, (x.shape[0] - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", max_iter=max_iter,
                random_state=seed).fit_transform(x)


def tsne_figure(features: Mapping[str, np.ndarray], labels, *, class_names: Sequence[str] | Mapping | None = None,
                max_points: int = 2000, pca_dim: int = 50, perplexity: float = 30.0, seed: int = 0, ncols: int = 4,
                point_size: float = 8.0, title: str | None = "t-SNE of learned features",
                path: str | Path | None = None, dpi: int = 120):
    """Seed 003 Fig. 3: one t-SNE panel per checkpoint (``{"epoch 10": features [N, D], ...}``, all on the
    same N images), points coloured by ``labels [N]`` (class index or name; ``class_names`` maps indices to
    names). The same subsample is used in every panel. Returns the Figure (one axes per checkpoint); the
    coordinates are attached as ``fig.tsne_coords`` (``{name: [n, 2]}``) with ``fig.tsne_indices``."""
    if not features:
        raise ValueError("features: give at least one checkpoint {name: [N, D] array}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class per image), got shape {labels.shape}")
    for name, f in features.items():
        if np.shape(f)[0] != labels.shape[0]:
            raise ValueError(f"features[{name!r}] has {np.shape(f)[0]} rows, labels {labels.shape[0]}")
    idx = subsample_indices(labels, max_points, seed)
    lab = labels[idx]
    classes = list(pd.unique(lab))
    try:
        classes = sorted(classes)
    except TypeError:
        pass

    def display(c):
        if isinstance(class_names, Mapping):
            return str(class_names.get(c, c))
        if class_names is not None and isinstance(c, (int, np.integer)) and 0 <= int(c) < len(class_names):
            return str(class_names[int(c)])
        return str(c)

    fig, axes = new_figure(len(features), ncols, panel_size=(4.0, 4.0))
    coords_all = {}
    for ax, (name, f) in zip(axes, features.items()):
        coords = tsne_embedding(np.asarray(f)[idx], pca_dim=pca_dim, perplexity=perplexity, seed=seed)
        coords_all[name] = coords
        for i, c in enumerate(classes):
            m = lab == c
            ax.scatter(coords[m, 0], coords[m, 1], s=point_size, alpha=0.7, color=f"C{i % 10}", label=display(c),
                       linewidths=0)
        ax.set_title(str(name), fontsize=FONT["title"])
        ax.set_xlabel("t-SNE 1", fontsize=FONT["label"])
        ax.set_ylabel("t-SNE 2", fontsize=FONT["label"])
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=FONT["legend"], frameon=False, loc="best", markerscale=2.0)
    if title:
        fig.suptitle(f"{title} ({idx.size} images)", fontsize=FONT["suptitle"])
    fig.tsne_coords = coords_all
    fig.tsne_indices = idx
    return save_figure(fig, path, dpi)
