"""Projection heads and the linear classifier.

* :class:`ProjectionHead` -- g_i / g_r of seed 001 §3 ("two-layer MLPs with ReLU") and the MLP -> 128 of
  seed 000 §3: ``num_layers`` Linear layers with ReLU (and optional BatchNorm) between them.
* :func:`simclr_projection_head` -- seed 003 Table I: (GAP, done by the encoder's ``pool``) -> Dense 2048 (bias)
  -> BatchNorm + ReLU -> Dense 128 (no bias).
* :class:`LinearClassifier` -- the linear classifier on y_i (seed 001 §3.3, seed 004 §2.3 "a fully-connected
  layer at the end of the pre-trained network").
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _check_features(module: nn.Module, x: torch.Tensor, in_dim: int) -> None:
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ValueError(f"{type(module).__name__} expects input [N, {in_dim}], got shape {tuple(x.shape)}")


class ProjectionHead(nn.Module):
    """MLP ``in_dim -> hidden_dim -> ... -> out_dim`` with ``num_layers`` Linear layers.

    Between layers: (BatchNorm1d if ``batch_norm``) + ReLU; the last layer is linear (bias per ``last_bias``).
    ``hidden_dim=None`` uses ``in_dim``. ``num_layers=1`` is a single Linear layer.
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128, num_layers: int = 2,
                 batch_norm: bool = False, last_bias: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"ProjectionHead needs num_layers >= 1, got {num_layers}")
        hidden = int(hidden_dim) if hidden_dim else int(in_dim)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        dims = [self.in_dim] + [hidden] * (num_layers - 1) + [self.out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=last_bias if last else True))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(dims[i + 1]))
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(self, x, self.in_dim)
        return self.net(x)


def simclr_projection_head(in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> ProjectionHead:
    """Seed 003 Table I: Linear(in, 2048) -> BN -> ReLU -> Linear(2048, 128, bias=False)."""
    return ProjectionHead(in_dim, hidden_dim, out_dim, num_layers=2, batch_norm=True, last_bias=False)


class LinearClassifier(nn.Module):
    """One Linear layer ``in_dim -> num_classes`` producing logits (one per finding, multi-label)."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"LinearClassifier needs num_classes >= 1, got {num_classes}")
        self.in_dim, self.num_classes = int(in_dim), int(num_classes)
        self.fc = nn.Linear(self.in_dim, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(self, x, self.in_dim)
        return self.fc(x)
