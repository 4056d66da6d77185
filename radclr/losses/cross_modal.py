"""Cross-modal NT-Xent with hard negatives (seed 001 §3.3, "Unsupervised Cross-Modal Contrastive Loss").

For an anchor image v_bd (disease d, body part b), its radiomic view v'_bd and the other images v_kl::

    l(v_bd) = -log( exp(sim(z_i(v_bd), z_r(v'_bd))/tau)
                    / sum_{k, l} 1[k = b, l != d] exp(sim(z_i(v_bd), z_i(v_kl))/tau) )

sim = cosine similarity. The positive is cross-modal (image embedding vs radiomics embedding of the same
image); the negatives are *image* embeddings of other images (the same domain, harder to tell apart, §3.1).
Which images are negatives is given by ``negative_mask[a, k]`` (row = anchor a), e.g. the "hard similar"
images of :func:`radclr.data.hierarchy.hard_negative_mask`; ``None`` means plain in-batch negatives (every
other image). The loss is averaged over the anchors used: ``anchor_mask`` restricts them (seed 001: "computed
across all disease-positive images in the minibatch").

Choices (documented, tested):

* **Positive in the denominator.** The formula in seed 001 sums over negatives only; NT-Xent/InfoNCE (which
  the text says it extends) include the positive, which keeps every term >= 0 and bounded below by 0 (without
  it the loss is unbounded below as the positive similarity grows). Default ``include_positive=True``;
  ``include_positive=False`` gives the paper's formula literally.
* **Anchors without negatives** (no allowed k) carry no contrastive signal and are **skipped** (not counted in
  the mean). If no anchor is usable the loss is a graph-connected 0 (gradients exist and are zero).
* The anchor itself is never a negative, whatever the mask says.
* **Background of the same image** (``background``, radclr's addition for region-pooled image views): for anchor
  a, the image embedding of the rest of its own image competes with the positive pair from the radiomics side,
  ``exp(sim(z_r(v'_a), z_bg(v_a))/tau)`` joins the denominator -- the region's radiomics must be closer to the
  pooled region than to the rest of the same image (rows with a NaN background, e.g. a region that is the whole
  image, ``background_mask`` false, have no such term).

Testable equivalences: with ``negative_mask=None`` and the positive included, each term is a cross-entropy
over ``[sim(z_i, z_r_a), sim(z_i, z_i_k) for k != a] / tau`` with target 0; with N identical embeddings every
used anchor contributes ``log(1 + n_negatives)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.losses._checks import check_pair, check_positive, full_precision, zero_loss


class CrossModalNTXentLoss(nn.Module):
    """``forward(z_img [N, D], z_rad [N, D], negative_mask [N, N] | None, anchor_mask [N] | None) -> scalar``."""

    def __init__(self, temperature: float = 0.1, include_positive: bool = True):
        super().__init__()
        self.temperature = check_positive(type(self).__name__, "temperature", temperature)
        self.include_positive = bool(include_positive)

    @full_precision
    def per_anchor(self, z_img: torch.Tensor, z_rad: torch.Tensor, negative_mask: torch.Tensor | None = None,
                   anchor_mask: torch.Tensor | None = None, background: torch.Tensor | None = None,
                   background_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(losses [N], used [N] bool)``: the term of each anchor (NaN where not used) and which were used."""
        name = type(self).__name__
        check_pair(name, z_img, z_rad, "z_img", "z_rad")
        n = z_img.shape[0]
        dev = z_img.device
        eye = torch.eye(n, dtype=torch.bool, device=dev)
        if negative_mask is None:
            allowed = ~eye
        else:
            if negative_mask.shape != (n, n):
                raise ValueError(f"{name}: negative_mask must be [N, N] = [{n}, {n}], got {tuple(negative_mask.shape)}")
            allowed = negative_mask.to(device=dev, dtype=torch.bool) & ~eye
        anchors = torch.ones(n, dtype=torch.bool, device=dev)
        if anchor_mask is not None:
            if anchor_mask.shape != (n,):
                raise ValueError(f"{name}: anchor_mask must be [N] = [{n}], got {tuple(anchor_mask.shape)}")
            anchors = anchor_mask.to(device=dev, dtype=torch.bool)
        used = anchors & allowed.any(dim=1)
        losses = torch.full((n,), float("nan"), dtype=z_img.dtype, device=dev)
        if used.any():
            zi = F.normalize(z_img, dim=1)
            zr = F.normalize(z_rad, dim=1)
            rows = used.nonzero(as_tuple=True)[0]
            pos = (zi[rows] * zr[rows]).sum(dim=1) / self.temperature  # [U]
            neg = (zi[rows] @ zi.t()) / self.temperature  # [U, N]
            neg = neg.masked_fill(~allowed[rows], float("-inf"))
            denom = torch.cat([pos.unsqueeze(1), neg], dim=1) if self.include_positive else neg
            if background is not None:
                check_pair(name, z_img, background, "z_img", "background")
                bg = (zr[rows] * F.normalize(background[rows], dim=1)).sum(dim=1) / self.temperature
                if background_mask is not None:
                    bg = bg.masked_fill(~background_mask.to(device=dev, dtype=torch.bool)[rows], float("-inf"))
                denom = torch.cat([denom, bg.unsqueeze(1)], dim=1)
            losses = losses.index_put((rows,), torch.logsumexp(denom, dim=1) - pos)
        return losses, used

    def forward(self, z_img: torch.Tensor, z_rad: torch.Tensor, negative_mask: torch.Tensor | None = None,
                anchor_mask: torch.Tensor | None = None, background: torch.Tensor | None = None,
                background_mask: torch.Tensor | None = None) -> torch.Tensor:
        losses, used = self.per_anchor(z_img, z_rad, negative_mask, anchor_mask, background, background_mask)
        if not used.any():
            return zero_loss(z_img, z_rad)
        return losses[used].mean()
