"""NT-Xent over 2B views (seed 003 §III-B eq. 4; SimCLR, Chen et al. 2020).

For the 2B projections Z = {z_1..z_B (view 1), z_{B+1}..z_{2B} (view 2)} and a positive pair (i, j) -- the two
views of the same image -- seed 003 eq. (4) is::

    l(z_i, z_j) = -log( exp(sim(z_i, z_j)/tau) / sum_{z_k in Z - {z_i}} exp(sim(z_i, z_k)/tau) )

with sim = cosine similarity (eq. 3). The loss is the mean of l over all 2B anchors (both orders of every
pair). The denominator contains the positive and the 2B - 2 negatives, never the anchor itself.

Testable equivalences: identical embeddings for all 2B views give ``log(2B - 1)``; it equals a cross-entropy
over the 2B x 2B cosine-similarity matrix with the diagonal removed and target ``i +- B``.

Under DDP, gather the projections of all ranks first (with gradients) to use the global batch as negatives.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.losses._checks import check_pair, check_positive, full_precision


class NTXentLoss(nn.Module):
    """``forward(z1 [B, D], z2 [B, D]) -> scalar`` (seed 003 eq. 4, tau default 0.5)."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = check_positive(type(self).__name__, "temperature", temperature)

    @full_precision
    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        check_pair(type(self).__name__, z1, z2, "z1", "z2")
        b = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
        logits = (z @ z.t()) / self.temperature
        self_mask = torch.eye(2 * b, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))  # Z - {z_i}
        idx = torch.arange(b, device=z.device)
        target = torch.cat([idx + b, idx])
        return F.cross_entropy(logits, target)
