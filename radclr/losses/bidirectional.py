"""Bidirectional image<->radiomics contrastive loss (seed 000 §3, eqs. 1-3).

Seed 000 eq. (1)::

    L(u->v)_i = -log( exp(<u_i, v_i>/tau) / sum_k exp(<u_i, v_k>/tau) )

eq. (2) is the same with the roles of u and v swapped, and eq. (3)::

    L = 1/N sum_i [ lambda * L(u->v)_i + (1 - lambda) * L(v->u)_i ]

The paper defines ``<u_i, v_i>`` as "the pairwise distance, i.e. [sum (u_i - v_i)^p]^(1/p)" with p = 2 and
tau = 0.1. Put literally inside ``exp(+./tau)`` a *distance* would reward pulling positives **apart**, so a
distance must be negated to act as a similarity: radclr uses ``sim(u, v) = -||u - v||_p`` (the p-norm of the
absolute differences, which is what the text means for p = 1, 2). ``similarity="cosine"`` uses the cosine
similarity instead (as in SimCLR/NT-Xent).

Testable equivalences (``tests/test_losses.py``):

* each direction is a row-wise cross-entropy with target i on the logits ``sim(u_i, v_k)/tau``;
* for identical similarities everywhere, each term equals ``log N``;
* with ``lambda_ = 1`` only the image->radiomics term remains; swapping (u, v) maps lambda to 1 - lambda.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.losses._checks import check_pair, check_positive, full_precision


def pairwise_similarity(u: torch.Tensor, v: torch.Tensor, similarity: str = "pnorm", p: float = 2.0) -> torch.Tensor:
    """``S[i, k] = sim(u_i, v_k)``: ``-||u_i - v_k||_p`` (``"pnorm"``) or cosine similarity (``"cosine"``)."""
    if similarity == "cosine":
        return F.normalize(u, dim=1) @ F.normalize(v, dim=1).t()
    # exact pairwise norms (no |u|^2 + |v|^2 - 2uv shortcut); finite (zero) gradient at zero distance
    return -torch.cdist(u, v, p=p, compute_mode="donot_use_mm_for_euclid_dist")


class BidirectionalContrastiveLoss(nn.Module):
    """Seed 000 eqs. (1)-(3). ``forward(u [N, D], v [N, D]) -> scalar``.

    Parameters
    ----------
    temperature: tau (seed 000: 0.1).
    lambda_: weight of the image->radiomics term (eq. 3), in [0, 1].
    similarity: ``"pnorm"`` (negative p-norm distance, the paper's choice) or ``"cosine"``.
    p: norm degree for ``"pnorm"`` (seed 000: 2), >= 1 (``float("inf")`` allowed).
    """

    def __init__(self, temperature: float = 0.1, lambda_: float = 0.5, similarity: str = "pnorm", p: float = 2.0):
        super().__init__()
        self.temperature = check_positive(type(self).__name__, "temperature", temperature)
        if not 0.0 <= float(lambda_) <= 1.0:
            raise ValueError(f"BidirectionalContrastiveLoss: lambda_ must be in [0, 1], got {lambda_}")
        if similarity not in ("pnorm", "cosine"):
            raise ValueError(f"BidirectionalContrastiveLoss: similarity must be 'pnorm' or 'cosine', "
                             f"got {similarity!r}")
        if not float(p) >= 1.0:
            raise ValueError(f"BidirectionalContrastiveLoss: p must be >= 1, got {p}")
        self.lambda_, self.similarity, self.p = float(lambda_), similarity, float(p)

    @full_precision
    def terms(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair terms ``(L(u->v) [N], L(v->u) [N])`` of eqs. (1) and (2)."""
        check_pair(type(self).__name__, u, v)
        logits = pairwise_similarity(u, v, self.similarity, self.p) / self.temperature  # [i, k] = <u_i, v_k>
        target = torch.arange(u.shape[0], device=u.device)
        l_uv = F.cross_entropy(logits, target, reduction="none")
        l_vu = F.cross_entropy(logits.t(), target, reduction="none")  # sim is symmetric: <v_i, u_k> = S[k, i]
        return l_uv, l_vu

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        l_uv, l_vu = self.terms(u, v)
        return (self.lambda_ * l_uv + (1.0 - self.lambda_) * l_vu).mean()
