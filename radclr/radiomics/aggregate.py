"""Small numeric helpers shared by the feature classes: PyRadiomics' epsilon and per-angle averaging."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["EPS", "angle_mean", "divide_or"]

EPS = float(np.spacing(1))  # PyRadiomics' eps in every log2(p + eps) and in GLCM correlation / MCC


def angle_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``numpy.nanmean`` over the angles a region has pairs/runs in: ``values``/``valid`` ``[B, A]`` -> ``[B]``.

    PyRadiomics deletes the angles whose matrix is empty and averages the per-angle feature values with
    ``nanmean``, so an angle whose value is NaN (e.g. ``sqrt`` of a value rounded below 0) is skipped too.
    A region without any usable angle gets NaN.
    """
    ok = valid & ~torch.isnan(values)
    total = torch.where(ok, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(1)
    n = ok.sum(1)
    return torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, float("nan")))


def divide_or(num: torch.Tensor, den: torch.Tensor, fill: float) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else ``fill`` (PyRadiomics' ``x[div != 0] /= div; x[div == 0] = fill``)."""
    safe = torch.where(den != 0, den, torch.ones((), dtype=den.dtype, device=den.device))
    return torch.where(den != 0, num / safe, torch.full_like(num, fill))
