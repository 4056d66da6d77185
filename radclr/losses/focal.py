"""Multi-label focal loss with unknown labels (seed 001 §3.3; Lin et al. ICCV 2017).

Seed 001 §3.3, with y' = sigmoid(logit) the predicted probability::

    L_fl = -alpha (1 - y')^gamma log(y')          if y = 1
           -(1 - alpha) y'^gamma log(1 - y')       if y = 0

i.e. per element ``alpha_t (1 - p_t)^gamma BCE(logit, y)`` with ``p_t = y' y + (1 - y')(1 - y)`` and
``alpha_t = alpha y + (1 - alpha)(1 - y)`` (the same expression interpolates for soft targets in [0, 1]).
``alpha=None`` disables the alpha weighting.

Unknown labels: NaN targets are **masked out**: they contribute nothing to the loss or its gradient, and the
``"mean"`` reduction averages over the known elements only (a batch with no known label gives a
graph-connected 0). ``reduction="none"`` returns ``[N, C]`` with 0 at unknown elements.

Precision: the loss runs in float32 with autocast off (:func:`~radclr.losses._checks.full_precision`): under
CUDA bf16 autocast the logits arrive in bf16, whose 8-bit mantissa puts ``(1 - p_t)^gamma`` of a confident
prediction (p_t = 0.99 -> 1e-4) off by several percent, and ``1 - p`` of p > 0.996 at exactly 0.

Testable equivalence: gamma = 0 gives ``alpha_t * BCE``, which equals
``(1 - alpha) * binary_cross_entropy_with_logits(logit, y, pos_weight=alpha / (1 - alpha))``;
with additionally ``alpha=None`` it is plain BCE.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.losses._checks import full_precision


class FocalLoss(nn.Module):
    """``forward(logits [N, C], targets [N, C] in {0, 1, NaN} or [0, 1]) -> scalar`` (or [N, C])."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__()
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"FocalLoss: alpha must be in [0, 1] or None, got {alpha}")
        if not float(gamma) >= 0.0:
            raise ValueError(f"FocalLoss: gamma must be >= 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"FocalLoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.alpha = None if alpha is None else float(alpha)
        self.gamma, self.reduction = float(gamma), reduction

    @full_precision
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape or logits.dim() not in (1, 2):
            raise ValueError(f"FocalLoss expects logits and targets of the same shape [N, C] (or [N]), "
                             f"got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}")
        targets = targets.to(logits.dtype)
        known = ~torch.isnan(targets)
        y = torch.where(known, targets, torch.zeros_like(targets))
        out_of_range = ((y < 0) | (y > 1)).any()
        if y.device.type == "cpu":
            if out_of_range:
                raise ValueError("FocalLoss: targets must be 0, 1 (or in [0, 1]) or NaN for unknown")
        else:  # checked on the device: no wait for the GPU at every step
            torch._assert_async(~out_of_range, "FocalLoss: targets must be 0, 1 (or in [0, 1]) or NaN for unknown")
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss = bce
        if self.gamma != 0.0:
            p = torch.sigmoid(logits)
            p_t = p * y + (1.0 - p) * (1.0 - y)
            loss = loss * (1.0 - p_t).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * (self.alpha * y + (1.0 - self.alpha) * (1.0 - y))
        loss = torch.where(known, loss, torch.zeros_like(loss))  # also blocks gradients of unknown elements
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        # no known element: the sum is a graph-connected 0 (what zero_loss gives), without a host sync to ask
        return loss.sum() / known.sum().clamp_min(1)
