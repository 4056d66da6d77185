"""The radiomics view's encoder f_r: standardisation + 3-layer MLP (seed 001 §3, seed 004 §2.3).

Seed 004 §2.3: radiomics features "are standardized and processed by three fully connected layers to
128-dimensional feature vectors". Standardisation statistics are fit on the **training split only**
(SPEC §5) and stored as buffers, so every checkpoint carries them and evaluation uses the training statistics.

Missing-value policy of :class:`Standardizer`
---------------------------------------------
Radiomic features can be NaN (PyRadiomics returns NaN for features it cannot compute, e.g. on a constant
region) or infinite. Non-finite values are *missing*:

* ``fit`` ignores them (nan-mean / nan-std, population std, ddof = 0, as scikit-learn's StandardScaler);
* a feature that is constant on the training split gets ``std = max(|mean|, 1)`` (so it maps to
  ``(x - mean) / |mean|``: 0 on the training data, a *relative* deviation elsewhere -- e.g. the area of a
  Grad-CAM box when every training region was the whole image, which ``std = 1`` would turn into values in the
  thousands) and is flagged in the ``constant`` buffer; a feature with no finite training value at all is
  flagged in ``constant`` *and* ``unseen`` and always maps to 0;
* ``forward`` standardises and replaces missing values by 0, i.e. by the **training mean** (mean imputation
  in standardised space).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


class Standardizer(nn.Module):
    """Per-feature ``(x - mean) / std`` with statistics fit once on training data (see module policy)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"Standardizer needs num_features >= 1, got {num_features}")
        self.num_features = int(num_features)
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.register_buffer("constant", torch.zeros(num_features, dtype=torch.bool))
        self.register_buffer("unseen", torch.zeros(num_features, dtype=torch.bool))
        self.register_buffer("fitted", torch.tensor(False))

    def _check(self, X, what: str) -> None:
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise ValueError(f"Standardizer.{what} expects [N, {self.num_features}], got shape {tuple(X.shape)}")

    @torch.no_grad()
    def fit(self, X) -> "Standardizer":
        """Fit mean/std on ``X`` ``[N, F]`` (Tensor or ndarray) -- the training split only."""
        X = X.detach().cpu().numpy() if torch.is_tensor(X) else np.asarray(X)
        self._check(X, "fit")
        if X.shape[0] == 0:
            raise ValueError("Standardizer.fit got no rows (shape (0, F)); fit it on the training split")
        X = X.astype(np.float64)
        X[~np.isfinite(X)] = np.nan
        seen = np.isfinite(X).any(axis=0)
        mean = np.zeros(self.num_features)
        std = np.ones(self.num_features)
        if seen.any():
            mean[seen] = np.nanmean(X[:, seen], axis=0)
            std[seen] = np.nanstd(X[:, seen], axis=0)
        constant = ~seen | ~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))
        std[constant] = np.maximum(np.abs(mean[constant]), 1.0)
        mean[~seen] = 0.0
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))
        self.constant.copy_(torch.as_tensor(constant))
        self.unseen.copy_(torch.as_tensor(~seen))
        self.fitted.fill_(True)
        return self

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if not bool(self.fitted):
            raise RuntimeError("Standardizer used before fit(): fit it on the training split first")
        self._check(X, "forward")
        Z = (X - self.mean) / self.std
        Z = torch.where(torch.isfinite(Z) & ~self.unseen, Z, torch.zeros_like(Z))
        return Z


class RadiomicsEncoder(nn.Module):
    """f_r = Standardizer -> [Linear -> ReLU (-> Dropout)] x len(hidden_dims) -> Linear(out_dim).

    With the default ``hidden_dims=(256, 256)`` this is the three-layer MLP of seeds 001/004.
    """

    def __init__(self, in_features: int, hidden_dims=(256, 256), out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_features, self.out_dim = int(in_features), int(out_dim)
        self.standardizer = Standardizer(in_features)
        dims = [self.in_features, *[int(h) for h in hidden_dims]]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-1], self.out_dim))
        self.mlp = nn.Sequential(*layers)

    def fit_standardizer(self, X) -> "RadiomicsEncoder":
        self.standardizer.fit(X)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.standardizer(x))
